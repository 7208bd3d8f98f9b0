"""A stateful fake of Microsoft Graph + Entra ID sign-in on 127.0.0.1 (HTTPS, a free port, a thread).

It runs the real connector code (httpx + MSAL) against the documented protocol: the identity endpoints
(``graph_identity.py``), and under ``/v1.0``:

    GET /users/{id}/mailFolders/{folder}/messages/delta     (also the mailFolders('{folder}') form of links)
    GET /users/{id}/messages/{id}[/$value]                   MIME via $value ("Get MIME content of a message")
    GET /users/{id}/calendarView/delta?startDateTime=&endDateTime=
    GET /users/{id}/events/{id}
    GET /users/{id}/contacts/delta, /users/{id}/contactFolders/{id}/contacts/delta, /users/{id}/contacts/{id}

with ``@odata.nextLink`` / ``@odata.deltaLink`` paging (``Prefer: odata.maxpagesize``), ``@removed`` entries,
``Prefer: IdType="ImmutableId"``, bearer-token checks (401 ``InvalidAuthenticationToken``), application
permissions and an application access policy (403 ``ErrorAccessDenied``), unknown users (404
``ErrorInvalidUser``), expired sync state (410 ``syncStateNotFound`` with a ``Location`` header — "delta query
overview: synchronization reset"), and injected throttling: 429 / 503 with ``Retry-After`` and the body of the
"Microsoft Graph throttling guidance" sample response (``graph_faults.py``). Data and delta rounds:
``graph_state.py`` and ``graph_data.py``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from tests.support.graph_data import FakeMailbox
from tests.support.graph_faults import Fault, fault_response, graph_error
from tests.support.graph_identity import AppRegistration, Identity
from tests.support.graph_state import GraphState, parse_offset
from tests.support.graph_tls import self_signed, ssl_context

_USER = re.compile(r"^/v1\.0/users/([^/]+)/(.+)$")
_NOT_MAIL = ("calendar", "contacts")  # the mailbox's collections that are no mail folders
_MAIL_DELTA = re.compile(r"^mailFolders(?:/([^/(]+)|\('([^']+)'\))/messages/delta$", re.I)
_CONTACTS_DELTA = re.compile(r"^(?:contactFolders/[^/]+/)?contacts/delta$", re.I)
_ITEM = re.compile(r"^(messages|events|contacts)/([^/]+?)(/\$value)?$")
_NEEDS = {"mail": "Mail.Read", "calendar": "Calendars.Read", "contacts": "Contacts.Read"}
_CONTEXT = {"mail": "message", "calendar": "event", "contacts": "contact"}


@dataclass
class Logged:
    path: str
    query: str
    prefer: list[str]
    user: str | None


@dataclass
class Activity:
    active: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)


class FakeGraphServer:
    """Start with :meth:`start`; ``source_url()`` gives the ``graph://`` URL that points the connector here."""

    def __init__(self, directory: Path, tenant: str = "contoso.onmicrosoft.com") -> None:
        self.cert_path, self._key_path = self_signed(directory)
        self.lock = threading.RLock()
        self.state = GraphState()
        self.identity = Identity(tenant)
        self.faults: list[Fault] = []
        self.log: list[Logged] = []
        self.allowed_mailboxes: set[str] | None = None  # application access policy (None: no policy)
        self.hold_parallel = 0  # $value requests wait until this many are in flight (proves concurrency)
        self.activity = Activity()
        self._parallel = threading.Condition(self.lock)
        self._httpd: ThreadingHTTPServer | None = None

    # --- life cycle and set-up ---------------------------------------------------------------------------

    def start(self) -> FakeGraphServer:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._httpd.socket = ssl_context(self.cert_path, self._key_path).wrap_socket(
            self._httpd.socket, server_side=True
        )
        self.identity.root = f"https://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, name="fake-graph", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def root(self) -> str:
        return self.identity.root

    def register_app(self, client_id: str, **options: Any) -> AppRegistration:
        with self.lock:
            app = self.identity.apps[client_id] = AppRegistration(client_id, **options)
            return app

    def mailbox(self, upn: str, name: str = "") -> FakeMailbox:
        return FakeMailbox(self.state, self.lock, upn, name)

    def source_url(self, upn: str, client_id: str, **options: str) -> str:
        query = {"client_id": client_id, "base": f"{self.root}/v1.0", "authority": self.root, **options}
        return f"graph://{self.identity.tenant}/{upn}?{urlencode(query)}"

    def fail(self, path_part: str, status: int, retry_after: str | None = None, times: int = 1) -> None:
        """The next ``times`` Graph requests whose path (and query) contains ``path_part`` get ``status``."""
        with self.lock:
            self.faults.append(Fault(path_part, status, retry_after, times))

    def expire_sync_state(self) -> None:
        with self.lock:
            self.state.expire_tokens()

    def revoke_access_tokens(self) -> None:
        with self.lock:
            self.identity.tokens.clear()

    def graph_requests(self, part: str = "") -> list[Logged]:
        with self.lock:
            return [entry for entry in self.log if part in entry.path]

    # --- Graph API ---------------------------------------------------------------------------------------

    def graph(self, path: str, query: dict[str, str], headers: Any) -> tuple[int, dict[str, str], Any]:
        prefer = [p.strip() for h in headers.get_all("Prefer") or [] for p in h.split(",")]
        token = self.identity.tokens.get(str(headers.get("Authorization", "")).removeprefix("Bearer "))
        if token is None or token.expires_at < time.time():
            return 401, {"WWW-Authenticate": 'Bearer realm=""'}, graph_error(
                "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")  # fmt: skip
        match = _USER.match(path)
        if match is None:
            return 400, {}, graph_error("BadRequest", "Resource not found for the segment.")
        upn, rest = unquote(match[1]).lower(), match[2]
        self.log.append(Logged(path, urlencode(query), prefer, token.upn))
        target = path + "?" + "&".join(f"{k}={v}" for k, v in query.items())
        for fault in self.faults:
            if fault.times > 0 and fault.path_part in target:
                fault.times -= 1
                return fault_response(fault)
        if upn not in self.state.mailboxes:
            return 404, {}, graph_error("ErrorInvalidUser", f"The requested user '{upn}' is invalid.")
        area = "mail" if rest.startswith(("mailFolders", "messages")) else "calendar" if rest.startswith(
            ("calendarView", "events")) else "contacts"  # fmt: skip
        denied = self._denied(token, upn, area)
        if denied:
            return 403, {}, graph_error("ErrorAccessDenied", denied)
        immutable = 'IdType="ImmutableId"' in prefer
        size = next((int(p.split("=", 1)[1]) for p in prefer if p.startswith("odata.maxpagesize=")), 10)
        return self._route(upn, rest, query, immutable, size)

    def _denied(self, token: Any, upn: str, area: str) -> str | None:
        if token.upn is not None:
            return None if token.upn == upn else "Access is denied. Check credentials and try again."
        if _NEEDS[area] not in token.roles:
            return "Access is denied. Check credentials and try again."
        if self.allowed_mailboxes is not None and upn not in self.allowed_mailboxes:
            return "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings."
        return None

    def _route(
        self, upn: str, rest: str, query: dict[str, str], immutable: bool, size: int
    ) -> tuple[int, dict[str, str], Any]:
        mail = _MAIL_DELTA.match(rest)
        if mail:
            folder = (mail[1] or mail[2]).lower()
            if folder in _NOT_MAIL or folder not in self.state.mailbox(upn).collections:  # see FakeMailbox.add_folder
                return 404, {}, graph_error("ErrorItemNotFound", "The specified object was not found in the store.")
            return self._delta(upn, folder, f"mailFolders('{folder}')/messages/delta", "mail", query, immutable, size)
        if rest.lower() == "calendarview/delta":
            return self._delta(upn, "calendar", "calendarView/delta", "calendar", query, immutable, size)
        if _CONTACTS_DELTA.match(rest):
            return self._delta(upn, "contacts", "contacts/delta", "contacts", query, immutable, size)
        item = _ITEM.match(rest)
        if item:
            mail_folders = tuple(c for c in self.state.mailbox(upn).collections if c not in _NOT_MAIL)
            collections = {"messages": mail_folders, "events": ("calendar",), "contacts": ("contacts",)}
            found = self.state.find(upn, collections[item[1]], unquote(item[2]))
            if found is None:
                return 404, {}, graph_error("ErrorItemNotFound", "The specified object was not found in the store.")
            if item[3]:
                self._wait_for_parallel()
                return 200, {"Content-Type": "text/plain"}, found.mime or b""
            collection = next(c for c in collections[item[1]] if found.immutable_id in
                              self.state.mailbox(upn).collections[c].items)  # fmt: skip
            return 200, {}, self.state.render(collection, found, immutable, None)
        return 400, {}, graph_error("BadRequest", f"Unsupported segment in {rest!r}.")

    def _delta(self, upn: str, collection: str, link_path: str, area: str, query: dict[str, str],
               immutable: bool, size: int) -> tuple[int, dict[str, str], Any]:  # fmt: skip
        base = f"{self.root}/v1.0/users/{quote(upn, safe='@')}/{link_path}"
        state = self.state
        if "$skiptoken" in query or "$deltatoken" in query:
            skip = state.skip_tokens.get(query.get("$skiptoken", ""))
            delta = state.delta_tokens.get(query.get("$deltatoken", ""))
            if skip is None and delta is None:
                gone = graph_error("syncStateNotFound", "The sync state generation is not found.")
                return 410, {"Location": base}, gone
            if skip is not None:
                rnd, offset = skip
            else:
                assert delta is not None
                rnd, offset = state.start_round(upn, collection, delta[2], delta[3], delta[4]), 0
        else:
            window = None
            if collection == "calendar":
                window = _window(query)
                if window is None:
                    text = "This request requires a time window specified by the query string parameters "
                    return 400, {}, graph_error("ErrorInvalidParameter", text + "StartDateTime and EndDateTime.")
            rnd, offset = state.start_round(upn, collection, 0, window, query.get("$select")), 0
        values, next_offset = state.page(rnd, offset, size, immutable)
        body: dict[str, Any] = {"@odata.context": f"{self.root}/v1.0/$metadata#Collection({_CONTEXT[area]})"}
        token = state.new_token()
        if next_offset is not None:
            state.skip_tokens[token] = (rnd, next_offset)
            body["@odata.nextLink"] = f"{base}?$skiptoken={token}"
        else:
            state.delta_tokens[token] = (upn, collection, rnd.snapshot, rnd.window, rnd.select)
            body["@odata.deltaLink"] = f"{base}?$deltatoken={token}"
        body["value"] = values
        headers = {"Preference-Applied": f"odata.maxpagesize={size}" + (', IdType="ImmutableId"' if immutable else "")}
        return 200, headers, body

    def _wait_for_parallel(self) -> None:
        """Hold $value answers until ``hold_parallel`` requests are in flight at once (once; 5 s at most)."""

        def reached() -> bool:
            return max(self.activity.peak.values(), default=0) >= self.hold_parallel

        if self.hold_parallel:
            self._parallel.wait_for(reached, timeout=5)

    def enter(self, upn: str) -> None:
        with self.lock:
            active = self.activity.active[upn] = self.activity.active.get(upn, 0) + 1
            self.activity.peak[upn] = max(self.activity.peak.get(upn, 0), active)
            self._parallel.notify_all()

    def leave(self, upn: str) -> None:
        with self.lock:
            self.activity.active[upn] -= 1


def _window(query: dict[str, str]) -> tuple[Any, Any] | None:
    try:
        return parse_offset(query["startDateTime"]), parse_offset(query["endDateTime"])
    except (KeyError, ValueError):
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeGraphServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``fake.log`` instead."""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        fake = self.fake
        if parts.path.endswith("/v2.0/.well-known/openid-configuration"):
            with fake.lock:
                status, body = fake.identity.openid_configuration(parts.path.split("/")[1])
            return self._send(status, {}, body)
        user = _USER.match(parts.path)
        upn = unquote(user[1]).lower() if user else ""
        fake.enter(upn)
        try:
            with fake.lock:
                status, headers, body = fake.graph(parts.path, query, self.headers)
        finally:
            fake.leave(upn)
        self._send(status, headers, body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode(), keep_blank_values=True).items()}
        path = urlsplit(self.path).path
        with self.fake.lock:
            if path.endswith("/oauth2/v2.0/token"):
                status, body = self.fake.identity.token_request(form, self.headers.get("Authorization"))
            elif path.endswith("/oauth2/v2.0/devicecode"):
                status, body = self.fake.identity.start_device_flow(form)
            else:
                status, body = 404, {"error": "not_found"}
        self._send(status, {}, body)

    def _send(self, status: int, headers: dict[str, str], body: Any) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        if "Content-Type" not in headers:
            self.send_header("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

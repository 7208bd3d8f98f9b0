"""A stateful loopback Exchange Web Services server for the EWS connector's tests.

It parses the SOAP requests exchangelib sends and answers the documented responses (see ``ews_xml`` for the
Microsoft reference page each response follows) from the state in ``ews_store``; ``ews_operations`` holds one
method per operation. Operations (found by running exchangelib against it and logging what it sends):

- ``ConvertId`` — exchangelib's version probe at login: answered with the documented error response; the
  ``ServerVersionInfo`` header (Exchange 2019) is what exchangelib reads.
- ``GetFolder`` for distinguished folders (root, msgfolderroot, inbox, sentitems, calendar, contacts) and for
  the folder ids it returned.
- ``SyncFolderItems`` — paging with ``MaxChangesReturned``; Create / Update / Delete / ReadFlagChange;
  ``ErrorInvalidSyncStateData`` for a sync state it did not issue (or invalidated).
- ``GetItem`` — messages (``MimeContent`` base64), calendar items and occurrences, contacts; only the requested
  properties (``IdOnly`` + ``AdditionalProperties``), ``ErrorItemNotFound`` per missing id.
- ``FindItem`` with ``CalendarView`` (singles, occurrences, exceptions; masters never) or ``IndexedPageItemView``.
- Throttling on demand: the next N requests get the HTTP 500 ``ErrorServerBusy`` fault with ``BackOffMilliseconds``.

Authentication: HTTP Basic (user → password), OAuth bearer tokens (token → user) and, with ``ntlm=True``, a
real NTLM handshake per connection (negotiate → challenge → authenticate, validated by pyspnego's NTLM acceptor
against the ``DOMAIN:USER:PASSWORD`` lines of the file named by ``NTLM_USER_FILE``); a connection that completed
it stays authenticated, as with IIS. Impersonation: an ``ExchangeImpersonation`` header is honoured only for
users listed in ``impersonators`` (the ApplicationImpersonation role), otherwise ``ErrorImpersonateUserDenied``.
"""

from __future__ import annotations

import base64
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

from tests.support import ews_xml as x
from tests.support.ews_operations import OPERATIONS, Fault, Operations, child
from tests.support.ews_store import EwsStore

_M, _T, _S = f"{{{x.M}}}", f"{{{x.T}}}", f"{{{x.S}}}"
PATH = "/EWS/Exchange.asmx"


@dataclass
class Request:
    """One SOAP request as the server saw it (for assertions)."""

    operation: str
    user: str
    mailbox: str | None
    impersonated: str | None


@dataclass
class EwsServer:
    users: dict[str, str] = field(default_factory=dict)  # Basic auth: user → password
    tokens: dict[str, str] = field(default_factory=dict)  # OAuth bearer token → user
    impersonators: set[str] = field(default_factory=set)  # users holding ApplicationImpersonation
    store: EwsStore = field(default_factory=EwsStore)
    requests: list[Request] = field(default_factory=list)
    mailboxes: set[str] = field(default_factory=set)
    ntlm: bool = False  # also accept NTLM, checked against the NTLM_USER_FILE of spnego (pyspnego)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._busy: list[tuple[int, str | None]] = []  # (back off ms, only this operation or any)
        self._http: ThreadingHTTPServer | None = None
        self._ops = Operations(self.store, self.mailboxes)

    # --- life cycle ---------------------------------------------------------------------------------------

    def start(self) -> str:
        server = self
        handler = type("Handler", (_Handler,), {"ews": server})
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._http.serve_forever, name="ews-server", daemon=True).start()
        return self.endpoint

    @property
    def endpoint(self) -> str:
        assert self._http is not None
        return f"http://127.0.0.1:{self._http.server_address[1]}{PATH}"

    @property
    def hostport(self) -> str:
        assert self._http is not None
        return f"127.0.0.1:{self._http.server_address[1]}"

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    # --- test controls ------------------------------------------------------------------------------------

    def throttle(self, times: int = 1, back_off_ms: int = 1500, operation: str | None = None) -> None:
        """The next ``times`` requests (of ``operation``, or any) are answered with ErrorServerBusy."""
        with self._lock:
            self._busy.extend([(back_off_ms, operation)] * times)

    def operations(self) -> list[str]:
        return [r.operation for r in self.requests]

    # --- request handling ---------------------------------------------------------------------------------

    def authenticate(self, header: str | None) -> str | None:
        scheme, _, value = (header or "").partition(" ")
        if scheme.lower() == "basic":
            user, _, password = base64.b64decode(value).decode("utf-8", "replace").partition(":")
            return user if user in self.users and self.users[user] == password else None
        if scheme.lower() == "bearer":
            return self.tokens.get(value.strip())
        return None

    def handle(self, user: str, body: bytes) -> tuple[int, bytes]:
        root = ET.fromstring(body)
        operation_el = child(root, f"{_S}Body")[0]
        operation = operation_el.tag.removeprefix(_M)
        impersonated = root.findtext(f"{_S}Header/{_T}ExchangeImpersonation/{_T}ConnectingSID/{_T}PrimarySmtpAddress")
        delegate = operation_el.findtext(f".//{_T}DistinguishedFolderId/{_T}Mailbox/{_T}EmailAddress")
        mailbox = impersonated or delegate or (user if "@" in user else None)
        with self._lock:
            self.requests.append(Request(operation, user, mailbox, impersonated))
            busy = next((b for b in self._busy if b[1] in (None, operation)), None)
            if busy is not None:
                self._busy.remove(busy)
        if busy is not None:
            return 500, x.server_busy_fault(busy[0])
        handler = getattr(self._ops, operation) if operation in OPERATIONS else None
        if handler is None:
            return 500, x.soap_fault("ErrorInvalidOperation", f"{operation} is not implemented by the test server")
        if impersonated and user not in self.impersonators:
            message = x.error(
                operation,
                "ErrorImpersonateUserDenied",
                "The account does not have permission to impersonate the requested user.",
            )
            return 200, x.envelope(x.response(operation, [message]))
        try:
            with self._lock:
                messages = handler(operation_el, mailbox)
        except Fault as fault:
            messages = [x.error(operation, fault.code, fault.text)]
        return 200, x.envelope(x.response(operation, messages))


class _Handler(BaseHTTPRequestHandler):
    ews: EwsServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(405, b"")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?")[0].lower() != PATH.lower():
            self._send(404, b"")
            return
        header = self.headers.get("Authorization") or ""
        if header.partition(" ")[0].lower() == "ntlm" and self.ews.ntlm:
            user, challenge = self._ntlm_step(header.partition(" ")[2])
            if user is None:
                self._send(401, b"", {"WWW-Authenticate": challenge} if challenge else self._challenges())
                return
        else:  # a connection that passed the NTLM handshake stays authenticated (as with IIS)
            user = self.ews.authenticate(header) if header else getattr(self, "ntlm_user", None)
        if user is None:
            self._send(401, b"", self._challenges())
            return
        try:
            status, payload = self.ews.handle(user, body)
        except (Fault, ET.ParseError, IndexError) as problem:
            status, payload = 500, x.soap_fault("ErrorSchemaValidation", str(problem))
        self._send(status, payload)

    def _challenges(self) -> dict[str, str]:
        return {"WWW-Authenticate": "NTLM" if self.ews.ntlm else 'Basic realm="127.0.0.1"'}

    def _ntlm_step(self, token: str) -> tuple[str | None, str | None]:
        """One leg of the NTLM handshake on this connection: (user once complete, else the challenge header)."""
        import spnego  # the acceptor checks the client's response against NTLM_USER_FILE

        context = getattr(self, "ntlm_context", None)
        if context is None or context.complete:
            context = self.ntlm_context = spnego.server(protocol="ntlm")
        try:
            answer = context.step(base64.b64decode(token))
        except Exception:  # a wrong password, a malformed message: the handshake fails
            self.ntlm_context = None
            return None, None
        if not context.complete:
            return None, "NTLM " + base64.b64encode(answer or b"").decode()
        self.ntlm_user: str | None = str(context.client_principal).rpartition("\\")[2]
        return self.ntlm_user, None


# --- what the tests use ---------------------------------------------------------------------------------

SVC_LOGIN, SVC_PASSWORD = "svc-crm-sync", "S3rvice-Passw0rd!"
SVC_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.loopback-token"


def make_server(mailboxes: set[str]) -> EwsServer:
    """A server holding ``mailboxes``; the service account may impersonate them (ApplicationImpersonation)."""
    return EwsServer(
        users={SVC_LOGIN: SVC_PASSWORD, "nobody": "pw"},
        tokens={SVC_TOKEN: SVC_LOGIN},
        impersonators={SVC_LOGIN},
        mailboxes=set(mailboxes),
    )


def serve_ews(mailboxes: set[str] | None = None) -> Iterator[EwsServer]:
    """A started server holding ``mailboxes`` (default: both reps'), stopped when the generator ends: what the
    ``ews_server`` fixtures yield from."""
    from tests.support.builders import REP, REP2

    server = make_server(mailboxes or {REP, REP2})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def url_for(server: EwsServer, rep: str, login: str = SVC_LOGIN, **options: str) -> str:
    """An ``ews://`` URL for ``server``: plain HTTP on loopback, Basic auth, impersonating ``rep`` (if given)."""
    query = {"auth": "basic", "tls": "0", **({"impersonate": rep} if rep else {}), **options}
    return f"ews://{login}@{server.hostport}/EWS/Exchange.asmx?{urlencode(query)}"

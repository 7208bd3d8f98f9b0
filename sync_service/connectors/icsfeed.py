"""``ics+https://host/path/feed.ics`` (and ``ics+http://`` for loopback tests) — a published calendar feed.

One folder ``"."`` holding one item: kind ``calendar``, external id ``feed``, version = the ETag (else
``sha256:<hex>`` of the body), bytes = the whole feed. The pipeline treats it as a full snapshot, so events
that disappear from the feed are cancelled.

Each listing is one conditional ``GET`` (``If-None-Match`` with the stored ETag, ``If-Modified-Since`` with the
stored Last-Modified): ``304`` → nothing changed; ``200`` with the same body hash → nothing changed either. The
body of a ``200`` is kept for the ``fetch`` that follows (no second download). Cursor:
``feed1.<base64url(JSON {etag, modified, sha256})>``.

A feed behind HTTP auth names its user in the URL (``ics+https://user@host/…``); the secret is the password, or
with ``?auth=bearer`` a token. ``401/403`` and ``404/410`` → ``PermanentSourceError``; network errors, timeouts,
``429`` and ``5xx`` → ``TransientSourceError`` (with Retry-After). Request timeout: ``?timeout=`` seconds (60).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Generator, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import httpx

from sync_service.connectors.base import ChangePage, ItemRef, RawItem
from sync_service.connectors.snapshot import check_root_folder
from sync_service.errors import ConfigError, PermanentSourceError, TransientSourceError

FEED_ID = "feed"
ROOT = "."
_PREFIX = "feed1."
_OPTIONS = {"auth", "timeout"}


class IcsFeedConnector:
    needs_secret = False  # only a feed whose URL names a user authenticates (see registry.needs_secret)

    def __init__(self, url: str, secret: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.password is not None:
            raise ConfigError("do not put a password in the source URL; use --secret-env VAR or the prompt")
        if not parts.hostname:
            raise ConfigError("a calendar feed URL needs a host: ics+https://host/path/feed.ics")
        query = parse_qsl(parts.query, keep_blank_values=True)
        options = {k.lower(): v for k, v in query if k.lower() in _OPTIONS}
        remaining = urlencode([(k, v) for k, v in query if k.lower() not in _OPTIONS])
        scheme = "https" if parts.scheme.lower() == "ics+https" else "http"
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.http_url = urlunsplit((scheme, netloc, parts.path or "/", remaining, ""))
        self.where = f"calendar feed {scheme}://{netloc}{parts.path}"
        try:
            timeout = float(options.get("timeout", "60"))
        except ValueError:
            raise ConfigError("the feed URL's timeout must be a number of seconds") from None
        auth: Any = None
        if parts.username:
            if not secret:
                raise PermanentSourceError(f"no password or token is stored for {self.where}")
            bearer = options.get("auth", "").lower() == "bearer"
            auth = _Bearer(secret) if bearer else httpx.BasicAuth(unquote(parts.username), secret)
        self._client = httpx.Client(timeout=timeout, auth=auth, follow_redirects=True)
        self._body: tuple[str, bytes] | None = None  # (version, bytes) of the last 200

    def folders(self) -> Sequence[str]:
        return [ROOT]

    def list_changes(self, folder: str, cursor: str | None, limit: int = 500) -> ChangePage:
        check_root_folder(folder)
        state = _decode(cursor)
        headers = {}
        if state.get("etag"):
            headers["If-None-Match"] = state["etag"]
        if state.get("modified"):
            headers["If-Modified-Since"] = state["modified"]
        response = self._get(headers)
        if response.status_code == 304:
            return ChangePage((), (), cursor or _encode({}))
        body = response.content
        digest = hashlib.sha256(body).hexdigest()
        etag = response.headers.get("ETag")
        new_state = {"etag": etag, "modified": response.headers.get("Last-Modified"), "sha256": digest}
        if digest == state.get("sha256"):
            return ChangePage((), (), _encode(new_state))
        version = etag or f"sha256:{digest}"
        self._body = (version, body)
        return ChangePage((ItemRef(FEED_ID, "calendar", version),), (), _encode(new_state))

    def fetch(self, folder: str, refs: Sequence[ItemRef]) -> Iterator[RawItem]:
        check_root_folder(folder)
        for ref in refs:
            if ref.external_id != FEED_ID:
                continue
            if self._body is None:  # fetch without a listing first: download now
                response = self._get({})
                self._body = (ref.version, response.content)
            yield RawItem(ItemRef(FEED_ID, "calendar", self._body[0]), self._body[1])

    def close(self) -> None:
        self._body = None
        self._client.close()

    def _get(self, headers: dict[str, str]) -> httpx.Response:
        try:
            response = self._client.get(self.http_url, headers=headers)
        except httpx.HTTPError as error:
            raise TransientSourceError(f"{self.where}: {type(error).__name__}") from None
        status = response.status_code
        if status in (401, 403):
            raise PermanentSourceError(f"{self.where}: access refused ({status}; check the user and the secret)")
        if status in (404, 410):
            raise PermanentSourceError(f"{self.where}: not found ({status})")
        if status == 429 or status >= 500:
            raise TransientSourceError(f"{self.where}: server answered {status}", retry_after=_retry_after(response))
        if status not in (200, 304):
            raise TransientSourceError(f"{self.where}: unexpected answer {status}")
        return response


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.strip().isdigit() else None


def _encode(state: dict[str, str | None]) -> str:
    raw = json.dumps({k: v for k, v in state.items() if v}, separators=(",", ":")).encode()
    return _PREFIX + base64.urlsafe_b64encode(raw).decode("ascii")


def _decode(cursor: str | None) -> dict[str, str]:
    if not cursor or not cursor.startswith(_PREFIX):
        return {}
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor[len(_PREFIX):]))
    except (ValueError, TypeError):
        return {}
    return {k: v for k, v in value.items() if isinstance(v, str)} if isinstance(value, dict) else {}

"""``caldav://`` / ``caldavs://`` — the calendars of a CalDAV account (the ``caldav`` library), read-only.

URL: ``caldav[s]://USER@HOST[:PORT]/PATH?sync=auto|etag&auth=basic|digest|bearer&timeout=60`` → the server at
``http[s]://HOST:PORT/PATH``. Folders: every calendar of the user's principal (their URL paths), or only the
one calendar the path names. The secret is the password (or, with ``auth=bearer``, an OAuth2 access token).

Items: one CalDAV resource = one item of kind ``calendar``: external id = the resource's URL path, version =
its ETag, bytes = the iCalendar object (a series with its overrides). The pipeline expands it and treats it as
a full snapshot of its events; a deleted resource is a delete (its meetings get cancelled).

Change tracking per calendar (cursor ``davsnap.py``: the snapshot href → ETag, plus the sync token or CTag):

- ``sync=auto`` (default): RFC 6578 ``sync-collection`` from the stored token gives the changed and removed
  hrefs; a token the server no longer knows (``valid-sync-token``) → a full listing diffed with the snapshot.
  A server without sync-collection → the fallback below, remembered in the cursor.
- ``sync=etag`` or the fallback: the CTag (``getctag``) unchanged → nothing to do; otherwise a ``PROPFIND``
  depth 1 of every ETag, diffed with the snapshot.

Pages hold at most ``limit`` upserts; deletes come in the first page; the token or CTag is written only with the
last page (earlier pages keep the old one), so a page's cursor covers exactly that page. Bytes are read with
``calendar-multiget`` in batches. Bad credentials / a missing calendar → ``PermanentSourceError``; network
errors, timeouts, 5xx and throttling → ``TransientSourceError`` (with the server's Retry-After). No message
carries the secret.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from caldav.davclient import DAVClient
from caldav.lib import error as dav_error
from caldav.lib.http_sync import requests as http_library
from caldav.requests import HTTPBearerAuth

from sync_service.connectors.base import ChangePage, ItemRef, RawItem
from sync_service.connectors.davsnap import State, change_page, decode_state, propfind_etags, url_path
from sync_service.errors import ConfigError, PermanentSourceError, TransientSourceError

log = logging.getLogger(__name__)
MULTIGET_BATCH = 100


class CalDavConnector:
    needs_secret = True

    def __init__(self, url: str, secret: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.password is not None:
            raise ConfigError("do not put a password in the source URL; use --secret-env VAR or the prompt")
        if not parts.hostname or not parts.username:
            raise ConfigError("a CalDAV source URL needs a user and a host: caldav[s]://USER@HOST[:PORT]/PATH")
        query = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
        self.mode = query.get("sync", "auto").lower()
        self.auth = query.get("auth", "").lower() or None
        if self.mode not in {"auto", "etag"} or self.auth not in {None, "basic", "digest", "bearer"}:
            raise ConfigError("CalDAV URL options: sync=auto|etag, auth=basic|digest|bearer")
        try:
            self.timeout = int(float(query.get("timeout", "60")))
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            raise ConfigError("the CalDAV URL's port and timeout must be numbers") from None
        self.username = unquote(parts.username)
        self.http_url = f"{'https' if parts.scheme.lower() == 'caldavs' else 'http'}://{parts.hostname}{port}"
        self.http_url += parts.path or "/"
        self.where = f"CalDAV {self.username}@{parts.hostname}{port}"
        self._secret = secret
        self._client: Any = None
        self._calendars: dict[str, Any] | None = None

    # -- Connector -------------------------------------------------------------------------------------
    def folders(self) -> Sequence[str]:
        return list(self._discover())

    def list_changes(self, folder: str, cursor: str | None, limit: int = 500) -> ChangePage:
        calendar = self._calendar(folder)
        state = decode_state(cursor)
        with self._errors(f"listing calendar {folder!r}"):
            if self.mode == "etag" or state.mode == "etag":
                return self._by_etags(calendar, state, limit)
            try:
                result = calendar.get_objects_by_sync_token(state.token, load_objects=False, disable_fallback=True)
            except dav_error.AuthorizationError as error:
                if "valid-sync-token" not in str(getattr(error, "preconditions", "")) or state.token is None:
                    raise
                log.info("%s: sync token of %r expired; listing the calendar again", self.where, folder)
                result = calendar.get_objects_by_sync_token(None, load_objects=False, disable_fallback=True)
                state = State(state.snapshot, None, None, state.mode)
            except (dav_error.ReportError, dav_error.DAVError) as error:
                if isinstance(error, dav_error.NotFoundError):
                    raise
                log.info("%s: no sync-collection (%s); falling back to CTag/ETag", self.where, error)
                return self._by_etags(calendar, State(state.snapshot, None, None, "etag"), limit)
        deleted = {url_path(u) for u in result.deleted_urls}
        current = dict(state.snapshot) if state.token else {}
        for obj in result.objects:
            path = url_path(obj.url)
            if path in deleted or path == url_path(calendar.url):
                current.pop(path, None)
            else:
                current[path] = (obj.props or {}).get("{DAV:}getetag") or f"token:{result.sync_token}"
        for path in deleted:
            current.pop(path, None)
        return change_page(current, state, limit, State({}, result.sync_token, None, "sync"))

    def fetch(self, folder: str, refs: Sequence[ItemRef]) -> Iterator[RawItem]:
        calendar = self._calendar(folder)
        by_path = {ref.external_id: ref for ref in refs}
        paths = list(by_path)
        for start in range(0, len(paths), MULTIGET_BATCH):
            batch = paths[start : start + MULTIGET_BATCH]
            with self._errors(f"reading events of {folder!r}"):
                objects = calendar.multiget([calendar.url.join(p) for p in batch])
            for obj in objects:
                ref = by_path.get(url_path(obj.url))
                data = obj.data
                if ref is not None and data:
                    yield RawItem(ref, data.encode("utf-8") if isinstance(data, str) else bytes(data))

    def close(self) -> None:
        client, self._client, self._calendars = self._client, None, None
        if client is not None:
            with contextlib.suppress(Exception):  # closing a dead session must not hide the real outcome
                client.close()

    # -- helpers ---------------------------------------------------------------------------------------
    def _by_etags(self, calendar: Any, state: State, limit: int) -> ChangePage:
        client, url = self._connect(), str(calendar.url)
        if state.ctag is not None and propfind_etags(client, url, depth=0)[0] == state.ctag:
            return ChangePage((), (), state.encode())  # the collection's CTag says nothing changed
        ctag, etags = propfind_etags(client, url)
        return change_page(etags, state, limit, State({}, None, ctag, "etag"))

    def _connect(self) -> Any:
        if self._client is None:
            if not self._secret:
                raise PermanentSourceError(f"no password or token is stored for {self.where}")
            options: dict[str, Any] = {"username": self.username, "password": self._secret}
            if self.auth == "bearer":
                options = {"auth": HTTPBearerAuth(self._secret)}
            elif self.auth:
                options["auth_type"] = self.auth
            self._client = DAVClient(url=self.http_url, timeout=self.timeout, enable_rfc6764=False, **options)
        return self._client

    def _discover(self) -> dict[str, Any]:
        if self._calendars is None:
            # A 404 while discovering: the URL's path names nothing on the server (a calendar that does not
            # exist, or a typo) — say which path, the only thing the user can fix.
            missing = f"no calendar at {url_path(self.http_url)} (check the path in the URL)"
            with self._errors("finding the calendars", missing):
                calendars = self._connect().principal().calendars()
            found = {url_path(c.url): c for c in calendars}
            named = url_path(self.http_url)
            self._calendars = {named: found[named]} if named in found else found
        return self._calendars

    def _calendar(self, folder: str) -> Any:
        calendar = self._discover().get(folder)
        if calendar is None:
            raise PermanentSourceError(f"no calendar {folder!r} for {self.where}")
        return calendar

    def _errors(self, doing: str, missing: str | None = None) -> _Translated:
        return _Translated(self.where, doing, missing)


class _Translated:
    """caldav / HTTP errors → the source error families; messages name the account, never the secret.
    ``missing``: what to say instead of "<doing>: not found on the server" when the server answers 404."""

    def __init__(self, where: str, doing: str, missing: str | None = None) -> None:
        self.where, self.doing, self.missing = where, doing, missing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is None or isinstance(error, PermanentSourceError | TransientSourceError):
            return
        what = f"{self.where}: {self.doing}"
        if isinstance(error, dav_error.RateLimitError):
            raise TransientSourceError(f"{what}: throttled", retry_after=error.retry_after_seconds) from None
        if isinstance(error, dav_error.AuthorizationError):
            raise PermanentSourceError(f"{what}: access refused (check the user and the secret)") from None
        if isinstance(error, dav_error.NotFoundError):
            if self.missing:
                raise PermanentSourceError(f"{self.where}: {self.missing}") from None
            raise PermanentSourceError(f"{what}: not found on the server") from None
        if isinstance(error, dav_error.DAVError):
            raise TransientSourceError(f"{what}: server error {getattr(error, 'reason', '')}".rstrip()) from None
        if isinstance(error, OSError | http_library.exceptions.RequestException):
            raise TransientSourceError(f"{what}: connection failed ({type(error).__name__})") from None

"""One authenticated GET against Microsoft Graph, with the errors mapped to the sync's error families.

Every request sends ``Prefer: IdType="ImmutableId"`` (ids that survive moves between folders —
https://learn.microsoft.com/graph/outlook-immutable-id) and, for collections, ``Prefer: odata.maxpagesize``.

Answers (https://learn.microsoft.com/graph/errors, https://learn.microsoft.com/graph/throttling):

- ``401`` → the token is dropped and the request repeated once with a new one; a second 401 is permanent.
- ``403`` (missing permission, an application access policy that excludes the mailbox) → permanent.
- ``404`` → :class:`NotFound` (the caller decides: a vanished item is skipped, a missing mailbox is permanent).
- ``410`` / ``syncStateNotFound`` / ``resyncRequired`` / ``syncStateInvalid`` → :class:`SyncStateLost`.
- ``429`` / ``503`` / ``504`` / other 5xx → transient, with the server's ``Retry-After``. A delay of at most
  ``SHORT_WAIT`` seconds is waited here (up to ``SHORT_RETRIES`` times); longer ones are left to the workers'
  backoff — a connector never sleeps for minutes.
- network errors and timeouts → transient.

Links from the server (``@odata.nextLink`` / ``@odata.deltaLink``, stored as cursors) are followed only when
they point at the configured Graph root, so a tampered cursor cannot send the bearer token elsewhere.
"""

from __future__ import annotations

import email.utils
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from sync_service.connectors.graph_auth import TokenSource
from sync_service.errors import PermanentSourceError, TransientSourceError

SHORT_WAIT = 2.0
SHORT_RETRIES = 3
_RESYNC_CODES = {"syncstatenotfound", "resyncrequired", "syncstateinvalid"}


class NotFound(Exception):
    """Graph answered 404 (item, folder or mailbox)."""


class SyncStateLost(Exception):
    """The delta token expired or became invalid: the collection must be synchronized from the start."""


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds: a number (Graph sends fractions such as ``2.128``) or an HTTP date."""
    raw = response.headers.get("Retry-After", "").strip()
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_code(response: httpx.Response) -> tuple[str, str]:
    """(code, message) of a Graph error body ``{"error": {"code": …, "message": …}}``; empty when absent."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "", ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code") or ""), " ".join(str(error.get("message") or "").split())[:300]


class GraphClient:
    """GETs against one Graph root with a token source; thread-safe (``fetch`` runs up to four at once)."""

    def __init__(self, base: str, origin: str, http: httpx.Client, tokens: TokenSource) -> None:
        self.base, self._origin, self._http, self._tokens = base, origin, http, tokens

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def owns(self, link: str) -> bool:
        """Whether ``link`` points at our Graph origin (scheme, host and port)."""
        return link == self._origin or link.startswith(self._origin + "/")

    def check_link(self, link: str) -> str:
        """A server-provided link, refused unless it points at our Graph origin."""
        if not self.owns(link):
            raise PermanentSourceError(f"graph: refusing to follow a link outside {self._origin}")
        return link

    def get_json(self, url: str, page_size: int | None = None, params: dict[str, str] | None = None) -> dict[str, Any]:
        response = self._get(url, page_size, params)
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise TransientSourceError(f"graph: the answer to {_path(url)} is not JSON") from None
        if not isinstance(body, dict):
            raise TransientSourceError(f"graph: unexpected answer to {_path(url)}")
        return body

    def get_bytes(self, url: str) -> bytes:
        return self._get(url, None, None).content

    def _get(self, url: str, page_size: int | None, params: dict[str, str] | None) -> httpx.Response:
        self.check_link(url)
        refreshed, waits = False, 0
        while True:
            headers = [("Authorization", f"Bearer {self._tokens.token()}"), ("Prefer", 'IdType="ImmutableId"')]
            if page_size:
                headers.append(("Prefer", f"odata.maxpagesize={page_size}"))
            try:
                response = self._http.get(url, params=params, headers=headers)
            except httpx.HTTPError as error:
                raise TransientSourceError(f"graph: {_path(url)}: {type(error).__name__}: {error}") from None
            status = response.status_code
            if status < 300:
                return response
            if status == 401 and not refreshed:
                self._tokens.invalidate()
                refreshed = True
                continue
            delay = retry_after(response)
            if _throttled(status) and delay is not None and delay <= SHORT_WAIT and waits < SHORT_RETRIES:
                waits += 1
                time.sleep(delay)
                continue
            raise _error(url, response, delay)


def _throttled(status: int) -> bool:
    return status == 429 or status >= 500


def _error(url: str, response: httpx.Response, delay: float | None) -> Exception:
    status = response.status_code
    code, message = error_code(response)
    what = f"graph: {_path(url)}: HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    if status == 410 or code.lower() in _RESYNC_CODES:
        return SyncStateLost(what)
    if status == 404:
        return NotFound(what)
    if _throttled(status):
        return TransientSourceError(what, retry_after=delay)
    if status in (401, 403):
        return PermanentSourceError(what + _hint(status))
    return PermanentSourceError(what) if 400 <= status < 500 else TransientSourceError(what, retry_after=delay)


def _hint(status: int) -> str:
    if status == 401:
        return " (the token was refused after a refresh: check the app registration and its credential)"
    return " (check the granted permissions, admin consent and the application access policy for this mailbox)"


def _path(url: str) -> str:
    """The URL without its query (state tokens are long and say nothing to a person)."""
    return httpx.URL(url).copy_with(query=None).path

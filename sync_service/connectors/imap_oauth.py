"""OAuth2 access tokens for IMAP ``auth=xoauth2``: a stored access token as is, or one refreshed on demand.

The mailbox secret is either an access token (used as is; refreshing it is then someone else's job) or a JSON
object holding a refresh grant (RFC 6749 §6)::

    {"token_url": "https://login.microsoftonline.com/TENANT/oauth2/v2.0/token",
     "client_id": "…", "refresh_token": "…",
     "client_secret": "…",                                                   (optional: public clients have none)
     "scope": "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"}   (optional)

``RefreshedTokens`` posts ``grant_type=refresh_token`` to ``token_url`` with httpx (TLS verified, the source's
timeout) and caches the access token until a minute before ``expires_in`` runs out. The cache is process-wide
per (token_url, client_id, refresh token), so the sync and every IDLE watch of one mailbox share one token.
A token endpoint that rotates the refresh token returns a new one: it is used from then on and
``rotated_secret()`` hands back the new JSON secret for the caller to store (encrypted).

Errors reuse the OAuth classification of the Graph connector (``graph_auth._fail``): ``invalid_grant``,
``invalid_client``… (a revoked or expired refresh token) are permanent; network trouble, 5xx and 429 transient.
No message carries a token or the client secret.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from sync_service.connectors.graph_auth import _fail
from sync_service.errors import ConfigError, PermanentSourceError, TransientSourceError

EARLY_SECONDS = 60.0  # refresh this long before the access token expires
DEFAULT_LIFETIME = 3600.0  # when the token endpoint does not say (``expires_in`` is only RECOMMENDED)
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class TokenSource(Protocol):
    refreshable: bool

    def token(self) -> str: ...

    def invalidate(self, token: str) -> None:
        """The server refused ``token``: forget it, so that the next :meth:`token` gets a fresh one."""
        ...

    def rotated_secret(self) -> str | None:
        """The secret to store instead of the one given, when the refresh token rotated; else ``None``."""
        ...


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    token_url: str
    client_id: str
    refresh_token: str
    client_secret: str | None = None
    scope: str | None = None

    def key(self) -> str:
        return hashlib.sha256("\n".join((self.token_url, self.client_id, self.refresh_token)).encode()).hexdigest()

    def to_secret(self) -> str:
        fields = {"token_url": self.token_url, "client_id": self.client_id, "refresh_token": self.refresh_token,
                  "client_secret": self.client_secret, "scope": self.scope}  # fmt: skip
        return json.dumps({k: v for k, v in fields.items() if v is not None})


def parse_grant(secret: str) -> RefreshGrant | None:
    """The refresh grant of a JSON secret; ``None`` for a plain access token."""
    if not secret.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(secret)
    except ValueError:
        raise ConfigError("IMAP xoauth2: the secret looks like JSON but does not parse") from None
    if not isinstance(data, dict):
        raise ConfigError("IMAP xoauth2: the JSON secret must be an object")
    required = ("token_url", "client_id", "refresh_token")
    missing = [k for k in required if not isinstance(data.get(k), str) or not data[k]]
    if missing:
        raise ConfigError(f"IMAP xoauth2: the JSON secret lacks {', '.join(missing)}")
    unknown = sorted(set(data) - {"token_url", "client_id", "refresh_token", "client_secret", "scope"})
    if unknown:
        raise ConfigError(f"IMAP xoauth2: unknown field(s) in the JSON secret: {', '.join(unknown)}")
    url = urlsplit(data["token_url"])
    if url.scheme != "https" and not (url.scheme == "http" and url.hostname in _LOOPBACK):
        raise ConfigError("IMAP xoauth2: token_url must be an https:// URL")
    optional = {k: data[k] for k in ("client_secret", "scope") if isinstance(data.get(k), str) and data[k]}
    return RefreshGrant(data["token_url"], data["client_id"], data["refresh_token"], **optional)


class StaticToken:
    """An access token stored as the secret: nothing to refresh."""

    refreshable = False

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self) -> str:
        return self._token

    def invalidate(self, token: str) -> None:
        pass

    def rotated_secret(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class _Cached:
    access_token: str
    expires_at: float  # time.monotonic()


_CACHE: dict[str, _Cached] = {}
_KEY_LOCKS: dict[str, threading.Lock] = {}
_CACHE_LOCK = threading.Lock()


def _key_lock(key: str) -> threading.Lock:
    with _CACHE_LOCK:
        return _KEY_LOCKS.setdefault(key, threading.Lock())


class RefreshedTokens:
    """Access tokens obtained with a refresh grant, cached per grant until shortly before they expire."""

    refreshable = True

    def __init__(self, grant: RefreshGrant, where: str, timeout: float) -> None:
        self._grant, self._original, self._where, self._timeout = grant, grant, where, timeout

    def token(self) -> str:
        key = self._grant.key()
        with _key_lock(key):  # one refresh at a time per grant: the other folders wait and share it
            cached = _CACHE.get(key)
            if cached is not None and cached.expires_at - EARLY_SECONDS > time.monotonic():
                return cached.access_token
            fresh, rotated = self._refresh()
            _CACHE[key] = fresh
            if rotated is not None and rotated != self._grant.refresh_token:
                self._grant = replace(self._grant, refresh_token=rotated)
                _CACHE[self._grant.key()] = fresh
            return fresh.access_token

    def invalidate(self, token: str) -> None:
        key = self._grant.key()
        with _key_lock(key):
            cached = _CACHE.get(key)
            if cached is not None and cached.access_token == token:
                del _CACHE[key]

    def rotated_secret(self) -> str | None:
        return self._grant.to_secret() if self._grant != self._original else None

    def _refresh(self) -> tuple[_Cached, str | None]:
        grant, what = self._grant, f"IMAP {self._where}: OAuth2 token refresh"
        form = {"grant_type": "refresh_token", "refresh_token": grant.refresh_token, "client_id": grant.client_id}
        if grant.client_secret:
            form["client_secret"] = grant.client_secret
        if grant.scope:
            form["scope"] = grant.scope
        started = time.monotonic()
        try:
            with httpx.Client(timeout=self._timeout) as client:
                response = client.post(grant.token_url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            raise TransientSourceError(f"{what}: {type(error).__name__}: {self._clean(str(error))}") from None
        body = _json(response)
        token = body.get("access_token")
        if response.status_code == 200 and isinstance(token, str) and token:
            seconds = _seconds(body.get("expires_in"))
            rotated = body.get("refresh_token") if isinstance(body.get("refresh_token"), str) else None
            return _Cached(token, started + (seconds if seconds > 0 else DEFAULT_LIFETIME)), rotated
        raise self._failure(response, body, what)

    def _failure(
        self, response: httpx.Response, body: dict[str, Any], what: str
    ) -> PermanentSourceError | TransientSourceError:
        status = response.status_code
        if status >= 500 or status in (408, 429):
            return TransientSourceError(f"{what} failed: HTTP {status}")
        if not body.get("error"):
            body = {"error": "invalid_grant" if status in (400, 401) else f"HTTP {status}"}
        error = _fail({k: self._clean(str(v)) for k, v in body.items() if k in ("error", "error_description")}, what)
        if isinstance(error, PermanentSourceError):
            return PermanentSourceError(f"{error}; store a new refresh token for this mailbox")
        return error

    def _clean(self, text: str) -> str:
        """Never let a secret through, even if a server echoes it."""
        for secret in (self._grant.refresh_token, self._original.refresh_token, self._grant.client_secret):
            if secret:
                text = text.replace(secret, "***")
        return " ".join(text.split())[:300]


def token_source(secret: str, where: str, timeout: float) -> TokenSource:
    grant = parse_grant(secret)
    return StaticToken(secret) if grant is None else RefreshedTokens(grant, where, timeout)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _seconds(value: object) -> float:
    """``expires_in`` as a number of seconds (0 when absent or not a number)."""
    if not isinstance(value, int | float | str):
        return 0.0
    try:
        return float(value)
    except ValueError:
        return 0.0

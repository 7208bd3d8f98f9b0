"""Access tokens for Microsoft Graph with MSAL, over the connector's own httpx client.

Two modes, chosen by ``auth=`` in the ``graph://`` URL (see :mod:`graph_config`):

``app`` — application permissions, OAuth 2.0 client credentials (``ConfidentialClientApplication``).
    The mailbox secret is either the app registration's *client secret*, or a PEM text holding the
    certificate's private key and the certificate itself (``-----BEGIN PRIVATE KEY-----`` … ``-----BEGIN
    CERTIFICATE-----`` …); MSAL then signs a client assertion. App tokens live in a process-wide MSAL cache
    per (authority, app, credential), so the syncs of many mailboxes share one token until it expires.

``device`` — delegated permissions for one user (``PublicClientApplication``). The mailbox secret is the
    serialized MSAL token cache (it holds the refresh token) produced once by the device-code sign-in::

        python -m sync_service.connectors.graph_auth login 'graph://…&auth=device' --output token-cache.json

    Refresh tokens rotate: after a sync, :meth:`TokenSource.rotated_secret` returns the updated cache and the
    runner stores it, encrypted, as the new mailbox secret.

MSAL validates authorities: ``instance_discovery=False`` skips the lookup at login.microsoftonline.com, so a
national cloud or a test server can serve ``/{tenant}/v2.0/.well-known/openid-configuration`` itself.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol, TextIO, TypeVar

import httpx
import msal

from sync_service.connectors.graph_config import GraphConfig, parse_graph_url
from sync_service.errors import ConfigError, PermanentSourceError, TransientSourceError

DELEGATED_SCOPES = ("Mail.Read", "Calendars.Read", "Contacts.Read")
# OAuth errors that retrying will not fix (RFC 6749 §5.2, plus Entra's interaction errors).
_PERMANENT = {"invalid_client", "unauthorized_client", "invalid_grant", "invalid_request", "invalid_scope",
              "access_denied", "consent_required", "interaction_required", "unsupported_grant_type"}  # fmt: skip
_PEM = re.compile(r"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.S)
_APP_CACHES: dict[str, msal.TokenCache] = {}
_APP_CACHES_LOCK = threading.Lock()
_RELOGIN = "sign in again: python -m sync_service.connectors.graph_auth login URL --output FILE"
T = TypeVar("T")


class TokenSource(Protocol):
    def token(self) -> str:
        """A valid access token (from the cache when it has one)."""
        ...

    def invalidate(self) -> None:
        """Graph rejected the current token (401): forget it so the next :meth:`token` gets a new one."""
        ...

    def rotated_secret(self) -> str | None:
        """The new mailbox secret when the stored one changed (rotated refresh token), else ``None``."""
        ...


class MsalHttp:
    """The ``get`` / ``post`` that MSAL calls, done with the connector's httpx client (its timeouts, its TLS)."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def get(self, url: str, params: Any = None, headers: Any = None, **_: Any) -> httpx.Response:
        return self._client.get(url, params=params, headers=headers)

    def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None, **_: Any) -> httpx.Response:
        if isinstance(data, str | bytes):
            return self._client.post(url, params=params, content=data, headers=headers)
        if isinstance(data, dict):  # MSAL passes the client assertion as bytes; httpx would send "b'…'"
            data = {k: v.decode("ascii") if isinstance(v, bytes) else v for k, v in data.items()}
        return self._client.post(url, params=params, data=data, headers=headers)

    def close(self) -> None:
        """The connector owns and closes the httpx client."""


def _credential(secret: str) -> str | dict[str, str]:
    """A client secret as is; a PEM text → MSAL's certificate credential (SHA-256 thumbprint, PS256)."""
    if "-----BEGIN" not in secret:
        return secret
    blocks = {m.group(1): m.group(0) for m in _PEM.finditer(secret)}
    key = next((v for k, v in blocks.items() if k.endswith("PRIVATE KEY")), None)
    certificate = blocks.get("CERTIFICATE")
    if key is None or certificate is None:
        raise ConfigError("graph source: a PEM secret must hold the private key and the certificate")
    return {"private_key": key, "public_certificate": certificate}


def _fail(result: dict[str, Any] | None, what: str) -> PermanentSourceError | TransientSourceError:
    """The error for an MSAL error answer (``{"error": …, "error_description": …}``)."""
    result = result or {"error": "invalid_grant", "error_description": "no usable token in the cache"}
    error = str(result.get("error") or "unknown_error")
    first_line = str(result.get("error_description") or "").splitlines()[0:1]
    message = f"{what} failed: {error}" + (f" ({first_line[0][:300]})" if first_line else "")
    return PermanentSourceError(message) if error in _PERMANENT else TransientSourceError(message)


def _guarded(call: Callable[[], T], what: str) -> T:
    """Run an MSAL call; network trouble is transient, an unusable authority / credential is permanent."""
    try:
        return call()
    except httpx.HTTPError as error:
        raise TransientSourceError(f"{what}: {type(error).__name__}: {error}") from None
    except msal.exceptions.MsalServiceError as error:  # MSAL raises these for 5xx answers
        raise TransientSourceError(f"{what}: {error}") from None
    except ValueError as error:  # unknown tenant, authority without OpenID metadata, malformed key
        raise PermanentSourceError(f"{what}: {' '.join(str(error).split())[:300]}") from None


class AppTokens:
    """Client-credentials tokens for the app registration (application permissions)."""

    def __init__(self, config: GraphConfig, secret: str, http: MsalHttp) -> None:
        self._config, self._http = config, http
        self._credential = _credential(secret)
        self._scopes = [f"{config.origin}/.default"]
        key = "|".join((config.authority_url, config.client_id, hashlib.sha256(secret.encode()).hexdigest()))
        with _APP_CACHES_LOCK:
            self._cache = _APP_CACHES.setdefault(key, msal.TokenCache())
        self._app: msal.ConfidentialClientApplication | None = None

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            config = self._config
            self._app = _guarded(lambda: msal.ConfidentialClientApplication(
                config.client_id, client_credential=self._credential, authority=config.authority_url,
                token_cache=self._cache, http_client=self._http, instance_discovery=False,
            ), "Microsoft Entra sign-in")  # fmt: skip
        return self._app

    def token(self) -> str:
        app = self._application()
        result = _guarded(lambda: app.acquire_token_for_client(scopes=self._scopes), "app token request")
        if not result or "access_token" not in result:
            raise _fail(result, "app token request")
        return str(result["access_token"])

    def invalidate(self) -> None:
        for entry in list(self._cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            self._cache.remove_at(entry)

    def rotated_secret(self) -> str | None:
        return None  # the client secret / certificate never changes by itself


class DeviceTokens:
    """Delegated tokens of one signed-in user, refreshed from the stored MSAL token cache."""

    def __init__(self, config: GraphConfig, secret: str, http: MsalHttp) -> None:
        self._config, self._http = config, http
        self._cache = msal.SerializableTokenCache()
        try:
            self._cache.deserialize(secret)
        except ValueError:
            raise ConfigError("graph source (auth=device): the secret is not an MSAL token cache") from None
        self._scopes = delegated_scopes(config)
        self._app: msal.PublicClientApplication | None = None
        self._force = False

    def _application(self) -> msal.PublicClientApplication:
        if self._app is None:
            self._app = _guarded(lambda: public_app(self._config, self._http, self._cache), "Microsoft Entra sign-in")
        return self._app

    def token(self) -> str:
        app = self._application()
        accounts = app.get_accounts(username=self._config.user) or app.get_accounts()
        if not accounts:
            raise PermanentSourceError(f"graph: no signed-in account in the token cache; {_RELOGIN}")
        force, self._force = self._force, False
        result = _guarded(
            lambda: app.acquire_token_silent_with_error(self._scopes, accounts[0], force_refresh=force),
            "delegated token refresh",
        )
        if not result or "access_token" not in result:
            error = _fail(result, "delegated token refresh")
            if isinstance(error, PermanentSourceError):
                raise PermanentSourceError(f"{error}; {_RELOGIN}")
            raise error
        return str(result["access_token"])

    def invalidate(self) -> None:
        self._force = True

    def rotated_secret(self) -> str | None:
        return self._cache.serialize() if self._cache.has_state_changed else None


def delegated_scopes(config: GraphConfig) -> list[str]:
    return [f"{config.origin}/{scope}" for scope in DELEGATED_SCOPES]


def public_app(config: GraphConfig, http: MsalHttp, cache: msal.TokenCache) -> msal.PublicClientApplication:
    return msal.PublicClientApplication(
        config.client_id, authority=config.authority_url, token_cache=cache, http_client=http,
        instance_discovery=False,
    )  # fmt: skip


def token_source(config: GraphConfig, secret: str | None, http: MsalHttp) -> TokenSource:
    if not secret:
        what = "client secret or certificate" if config.auth == "app" else "token cache from the device sign-in"
        raise ConfigError(f"graph source: the mailbox secret ({what}) is missing")
    if config.auth == "device":
        return DeviceTokens(config, secret, http)
    return AppTokens(config, secret, http)


def device_login(url: str, out: TextIO | None = None) -> str:
    """Run the device-code sign-in for a ``graph://…&auth=device`` URL; returns the token cache (the secret)."""
    config = parse_graph_url(url)
    if config.auth != "device":
        raise ConfigError("device sign-in needs a graph:// URL with auth=device")
    cache = msal.SerializableTokenCache()
    with httpx.Client(timeout=config.timeout) as client:
        app = _guarded(lambda: public_app(config, MsalHttp(client), cache), "Microsoft Entra sign-in")
        flow = _guarded(lambda: app.initiate_device_flow(scopes=delegated_scopes(config)), "device sign-in")
        if "user_code" not in flow:
            raise _fail(flow, "device sign-in")
        instructions = flow.get("message") or f"Open {flow['verification_uri']} and enter {flow['user_code']}"
        print(instructions, file=out or sys.stderr, flush=True)
        result = _guarded(lambda: app.acquire_token_by_device_flow(flow), "device sign-in")
    if not result or "access_token" not in result:
        raise _fail(result, "device sign-in")
    return cache.serialize()


def main(argv: list[str] | None = None) -> int:
    """``python -m sync_service.connectors.graph_auth login URL --output FILE`` (file created with mode 0600)."""
    parser = argparse.ArgumentParser(prog="python -m sync_service.connectors.graph_auth")
    sub = parser.add_subparsers(dest="command", required=True)
    login = sub.add_parser("login", help="device-code sign-in for a graph:// URL with auth=device")
    login.add_argument("url")
    login.add_argument("--output", required=True, help="file to write the token cache to (the mailbox secret)")
    args = parser.parse_args(argv)
    try:
        secret = device_login(args.url)
    except (ConfigError, PermanentSourceError, TransientSourceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret)
    print(f"token cache written to {args.output}: add the mailbox with --secret-env, then delete the file",
          file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

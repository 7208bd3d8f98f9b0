"""``graph://`` source URLs → :class:`GraphConfig` (Microsoft 365 / Exchange Online through Microsoft Graph).

URL form (nothing secret in it; the client secret, certificate or delegated token cache is the mailbox secret)::

    graph://TENANT/MAILBOX?client_id=APP_ID[&auth=app|device][&folders=inbox,sentitems,calendar,contacts]
            [&base=https://graph.microsoft.com/v1.0][&authority=https://login.microsoftonline.com]
            [&past_days=90][&future_days=180][&timeout=30]

- ``TENANT``: the directory (tenant) id or a verified domain such as ``contoso.onmicrosoft.com``.
- ``MAILBOX``: the user principal name / primary SMTP address whose mailbox is read.
- ``auth=app`` (default): application permissions, client credentials (secret or certificate).
  ``auth=device``: delegated permissions; the secret is the MSAL token cache written by
  ``python -m sync_service.connectors.graph_auth login URL``.
- ``folders``: mail folders by well-known name (``inbox``, ``sentitems``, ``archive``…) or id, plus the
  pseudo-folders ``calendar`` (the primary calendar's ``calendarView`` over the sync window) and ``contacts``.
- ``base`` / ``authority``: the Graph root and the login host — national clouds (``graph.microsoft.us`` …) or,
  in tests, a loopback server. Both must be ``https``.
- ``past_days`` / ``future_days``: the calendar window; default ``CRM_SYNC_WINDOW_PAST_DAYS`` /
  ``CRM_SYNC_WINDOW_FUTURE_DAYS`` or 90 / 180 days, as for every other calendar source.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from sync_service.errors import ConfigError

AuthMode = Literal["app", "device"]
CALENDAR, CONTACTS = "calendar", "contacts"
DEFAULT_FOLDERS = ("inbox", "sentitems", CALENDAR, CONTACTS)
DEFAULT_BASE = "https://graph.microsoft.com/v1.0"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
_KNOWN = {"client_id", "auth", "folders", "base", "authority", "past_days", "future_days", "timeout"}


@dataclass(frozen=True, slots=True)
class GraphConfig:
    tenant: str
    user: str
    client_id: str
    auth: AuthMode = "app"
    folders: tuple[str, ...] = DEFAULT_FOLDERS
    base: str = DEFAULT_BASE  # no trailing slash
    authority: str = DEFAULT_AUTHORITY  # no trailing slash
    past_days: int = 90
    future_days: int = 180
    timeout: float = 30.0

    @property
    def origin(self) -> str:
        """``scheme://host[:port]`` of the Graph root: the resource that tokens are requested for."""
        parts = urlsplit(self.base)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def authority_url(self) -> str:
        return f"{self.authority}/{self.tenant}"


def _one(query: dict[str, list[str]], name: str, default: str = "") -> str:
    values = query.get(name)
    return values[-1].strip() if values else default


def _days(query: dict[str, list[str]], name: str, env: str, default: int) -> int:
    raw = _one(query, name) or os.environ.get(env, "").strip() or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"graph source: {name} must be a whole number of days, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"graph source: {name} must not be negative")
    return value


def _https_root(raw: str, name: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"graph source: {name} must be an https URL without query, got {raw!r}")
    return raw.rstrip("/")


def parse_graph_url(url: str) -> GraphConfig:
    """Read a ``graph://`` URL; :class:`ConfigError` says what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "graph":
        raise ConfigError(f"not a graph:// URL: {url!r}")
    if parts.password is not None or parts.username is not None:
        raise ConfigError("graph source: no credentials in the URL; the secret comes from --secret-env or a prompt")
    tenant = unquote(parts.hostname or "").strip()
    user = unquote(parts.path.strip("/")).strip().lower()
    if not tenant or not user or "/" in user or "@" not in user:
        raise ConfigError("graph source: expected graph://TENANT/user@domain?client_id=APP_ID")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - _KNOWN)
    if unknown:
        raise ConfigError(f"graph source: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(_KNOWN))})")
    client_id = _one(query, "client_id")
    if not client_id:
        raise ConfigError("graph source: client_id=APP_ID (the app registration's application id) is required")
    auth = _one(query, "auth", "app").lower()
    if auth not in ("app", "device"):
        raise ConfigError(f"graph source: auth must be app or device, got {auth!r}")
    folders = tuple(f.strip() for f in _one(query, "folders", ",".join(DEFAULT_FOLDERS)).split(",") if f.strip())
    if not folders or len(set(folders)) != len(folders):
        raise ConfigError("graph source: folders must list distinct folder names")
    try:
        timeout = float(_one(query, "timeout", "30"))
    except ValueError:
        raise ConfigError("graph source: timeout must be a number of seconds") from None
    return GraphConfig(
        tenant=tenant,
        user=user,
        client_id=client_id,
        auth="device" if auth == "device" else "app",
        folders=folders,
        base=_https_root(_one(query, "base", DEFAULT_BASE), "base"),
        authority=_https_root(_one(query, "authority", DEFAULT_AUTHORITY), "authority"),
        past_days=_days(query, "past_days", "CRM_SYNC_WINDOW_PAST_DAYS", 90),
        future_days=_days(query, "future_days", "CRM_SYNC_WINDOW_FUTURE_DAYS", 180),
        timeout=max(1.0, min(timeout, 300.0)),
    )

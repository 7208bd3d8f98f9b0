"""``imap://`` / ``imaps://`` source URLs → an ``ImapConfig`` (no network, no secret).

``imap[s]://USER@HOST[:PORT]/?folders=INBOX,Sent&idle=1&auth=xoauth2&starttls=auto&timeout=60&deadline=120&batch=250``

- ``folders``: comma-separated folder names; default INBOX plus the folder the server flags ``\\Sent``
  (special-use, RFC 6154). A name ``\\Sent`` / ``\\Archive`` … means "the folder with that special use".
- ``auth``: ``password`` (default; LOGIN, or AUTHENTICATE PLAIN for non-ASCII credentials) or ``xoauth2`` (the
  secret is an OAuth2 access token, or a JSON refresh grant: ``imap_oauth.py``).
- ``starttls`` (``imap://`` only): ``auto`` (default: upgrade when the server offers STARTTLS), ``require``, ``off``.
- ``idle``: ``1`` to have ``crm-sync watch`` (``workers/watch.py``) keep an IDLE connection per folder and queue a
  sync as soon as mail arrives or goes; ``0`` (default): synced on the scheduler's interval only.
- ``timeout``: seconds the server may stay silent in any network operation (default 60); ``deadline``: seconds
  one command may take in all, its whole answer included (default twice ``timeout``; a FETCH batch gets more per
  message and per byte: ``imap_deadline.py``); ``batch``: UIDs per FETCH (default 250).

The user name may be an email address (``imap://alice%40example.com@host`` or ``imap://alice@example.com@host``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from sync_service.connectors.imap_deadline import default_deadline
from sync_service.errors import ConfigError

AuthMethod = Literal["password", "xoauth2"]
StartTls = Literal["auto", "require", "off"]
_DEFAULT_PORTS = {"imap": 143, "imaps": 993}


@dataclass(frozen=True, slots=True)
class ImapConfig:
    scheme: str
    host: str
    port: int
    username: str
    folders: tuple[str, ...] | None = None  # None: INBOX + the \Sent folder
    auth: AuthMethod = "password"
    starttls: StartTls = "auto"
    idle: bool = False
    timeout: float = 60.0
    fetch_batch: int = 250
    deadline: float | None = None  # None: default_deadline(timeout)

    @property
    def command_deadline(self) -> float:
        """Seconds one command may take in all (before the FETCH allowances of ``imap_deadline``)."""
        return self.deadline if self.deadline is not None else default_deadline(self.timeout)

    @property
    def where(self) -> str:
        """``user@host:port`` for messages (never a secret)."""
        return f"{self.username}@{self.host}:{self.port}"

    @classmethod
    def from_url(cls, url: str) -> ImapConfig:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ConfigError(f"not an IMAP URL: scheme {scheme!r}")
        if parts.password is not None:
            raise ConfigError("do not put a password in the source URL; use --secret-env VAR or the prompt")
        if not parts.hostname or not parts.username:
            raise ConfigError("an IMAP source URL needs a user and a host: imap://USER@HOST[:PORT]/")
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise ConfigError("the port of the IMAP source URL is not a number") from None
        query = {k.lower(): v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = set(query) - {"folders", "idle", "auth", "starttls", "timeout", "deadline", "batch"}
        if unknown:
            raise ConfigError(f"unknown IMAP URL option(s): {', '.join(sorted(unknown))}")
        folders = tuple(f.strip() for f in query.get("folders", "").split(",") if f.strip()) or None
        return cls(
            scheme=scheme,
            host=parts.hostname,
            port=port,
            username=unquote(parts.username),
            folders=folders,
            auth=_choice(query, "auth", ("password", "xoauth2"), "password"),  # type: ignore[arg-type]
            starttls=_choice(query, "starttls", ("auto", "require", "off"), "auto"),  # type: ignore[arg-type]
            idle=_flag(query.get("idle", "0")),
            timeout=_positive(query, "timeout", 60.0),
            fetch_batch=int(_positive(query, "batch", 250)),
            deadline=_positive(query, "deadline", 0.0) or None,  # 0.0: not given (a given one is positive)
        )


def _choice(query: dict[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = query.get(name, default).strip().lower() or default
    if value not in allowed:
        raise ConfigError(f"IMAP URL option {name}={value!r}: expected one of {', '.join(allowed)}")
    return value


def _flag(value: str) -> bool:
    value = value.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"", "0", "false", "no", "off"}:
        return False
    raise ConfigError(f"IMAP URL option idle={value!r}: expected 1 or 0")


def _positive(query: dict[str, str], name: str, default: float) -> float:
    raw = query.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"IMAP URL option {name}={raw!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"IMAP URL option {name} must be positive")
    return value

"""``ews://`` source URLs → an exchangelib ``Account``, and exchangelib errors → our error families.

URL form (documented for admins in ``docs/exchange.md``)::

    ews://LOGIN@HOST[:PORT][/EWS/Exchange.asmx]?auth=ntlm|basic|oauth&impersonate=rep@example.com
        [&mailbox=rep@example.com] [&autodiscover=1] [&tls=0] [&timeout=60]
        [&past_days=90&future_days=180] [&max_occurrences=1000] [&folders=inbox,sent,calendar,contacts]
        [&client_id=APP-ID&tenant=TENANT-ID]

- LOGIN is percent-decoded: ``CONTOSO%5Csvc-crm-sync`` for ``CONTOSO\\svc-crm-sync``, or a UPN.
- The mailbox read is ``impersonate=`` (ApplicationImpersonation), else ``mailbox=`` (delegate / FullAccess),
  else LOGIN itself when it is an email address.
- The secret (never in the URL) is the password (ntlm, basic), the OAuth client secret (oauth with
  ``client_id`` and ``tenant``: client-credentials grant), or a ready OAuth access token (oauth without them).
- ``autodiscover=1`` finds the endpoint from the mailbox address; HOST and path are then not used.
- ``tls=0`` speaks plain HTTP (loopback tests, TLS-offloading proxies). A private CA goes in
  ``REQUESTS_CA_BUNDLE``. ``auth=oauth`` refuses it (oauthlib sends tokens over https only) unless
  ``OAUTHLIB_INSECURE_TRANSPORT`` is set, oauthlib's own switch for loopback tests.

Retries: exchangelib runs with ``FailFast``, so it never sleeps inside a sync; ``ErrorServerBusy`` (with its
``BackOffMilliseconds``) becomes ``TransientSourceError(retry_after=…)`` and the workers back off — also when
it answers the first request of a connection, which exchangelib's version probe wraps in a ``TransportError``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import requests
from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    NTLM,
    OAUTH2,
    Account,
    Configuration,
    Credentials,
    FailFast,
    Identity,
    OAuth2AuthorizationCodeCredentials,
    OAuth2Credentials,
)
from exchangelib import UTC as EWS_UTC
from exchangelib import errors as ex
from exchangelib.protocol import Protocol
from oauthlib.oauth2 import InsecureTransportError, OAuth2Error

from sync_service.errors import ConfigError, PermanentSourceError, TransientSourceError

DEFAULT_PATH = "/EWS/Exchange.asmx"
FOLDER_NAMES = ("inbox", "sent", "calendar", "contacts")
_AUTH = ("ntlm", "basic", "oauth")
_OPTIONS = {
    "auth",
    "impersonate",
    "mailbox",
    "autodiscover",
    "tls",
    "timeout",
    "past_days",
    "future_days",
    "max_occurrences",
    "folders",
    "client_id",
    "tenant",
}


@dataclass(frozen=True)
class EwsSettings:
    """Everything an ``ews://`` URL says (see the module docstring)."""

    login: str
    endpoint: str
    auth: str
    mailbox: str
    impersonate: bool
    autodiscover: bool
    timeout: int
    past_days: int
    future_days: int
    max_occurrences: int
    folders: tuple[str, ...]
    client_id: str | None = None
    tenant: str | None = None


def _flag(value: str, name: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"ews: {name}= takes 0 or 1, got {value!r}")


def _number(options: dict[str, str], name: str, default: int, low: int = 0) -> int:
    raw = options.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < low:
        raise ConfigError(f"ews: {name}= takes a whole number of at least {low}, got {raw!r}")
    return int(raw)


def _env_days(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw.isdigit() else default


def parse_url(url: str) -> EwsSettings:
    """Validate an ``ews://`` URL; raises ``ConfigError`` with the reason."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "ews":
        raise ConfigError(f"not an ews:// URL: {parts.scheme}://…")
    if parts.password is not None:
        raise ConfigError("ews: do not put a password in the URL; it is the mailbox secret")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - _OPTIONS)
    if unknown:
        raise ConfigError(f"ews: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(_OPTIONS))})")
    options = {k: v[-1].strip() for k, v in query.items()}
    login = unquote(parts.username or "")
    if not login:
        raise ConfigError("ews: the URL names no login (ews://LOGIN@HOST/…)")
    auth = (options.get("auth") or "ntlm").lower()
    if auth not in _AUTH:
        raise ConfigError(f"ews: auth= must be one of {', '.join(_AUTH)}, got {auth!r}")
    impersonate, delegate = options.get("impersonate", ""), options.get("mailbox", "")
    mailbox = (impersonate or delegate or login).lower()
    if "@" not in mailbox:
        raise ConfigError("ews: name the mailbox with impersonate=rep@domain or mailbox=rep@domain")
    autodiscover = _flag(options.get("autodiscover") or "0", "autodiscover")
    host = parts.hostname or ""
    if not host and not autodiscover:
        raise ConfigError("ews: the URL names no server (or set autodiscover=1)")
    scheme = "https" if _flag(options.get("tls") or "1", "tls") else "http"
    if auth == "oauth" and scheme == "http" and not os.environ.get("OAUTHLIB_INSECURE_TRANSPORT"):
        raise ConfigError("ews: OAuth needs TLS: remove tls=0 (or use auth=basic or auth=ntlm)")
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{parts.port}" if parts.port else ""
    path = parts.path if parts.path not in ("", "/") else DEFAULT_PATH
    folders = tuple(
        f.strip().lower() for f in (options.get("folders") or ",".join(FOLDER_NAMES)).split(",") if f.strip()
    )
    bad = [f for f in folders if f not in FOLDER_NAMES]
    if bad or not folders:
        raise ConfigError(f"ews: folders= takes {', '.join(FOLDER_NAMES)}; got {', '.join(bad) or 'none'}")
    client_id, tenant = options.get("client_id") or None, options.get("tenant") or None
    if auth == "oauth" and bool(client_id) != bool(tenant):
        raise ConfigError("ews: auth=oauth takes both client_id= and tenant= (client credentials) or neither (token)")
    return EwsSettings(
        login=login,
        endpoint=f"{scheme}://{netloc}{path}",
        auth=auth,
        mailbox=mailbox,
        impersonate=bool(impersonate),
        autodiscover=autodiscover,
        timeout=_number(options, "timeout", 60, 1),
        past_days=_number(options, "past_days", _env_days("CRM_SYNC_WINDOW_PAST_DAYS", 90)),
        future_days=_number(options, "future_days", _env_days("CRM_SYNC_WINDOW_FUTURE_DAYS", 180)),
        max_occurrences=_number(options, "max_occurrences", 1000, 1),
        folders=folders,
        client_id=client_id,
        tenant=tenant,
    )


class _Own:
    """Equal only to itself: exchangelib caches one ``Protocol`` (with its session pool) per endpoint and equal
    credentials, process-wide; every connector gets its own, so closing one never touches another's sessions."""

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)


class _Password(_Own, Credentials):
    pass


class _ClientSecret(_Own, OAuth2Credentials):
    pass


class _AccessToken(_Own, OAuth2AuthorizationCodeCredentials):
    pass


def _credentials(settings: EwsSettings, secret: str) -> tuple[Any, str]:
    """(exchangelib credentials, exchangelib auth type)."""
    if settings.auth == "oauth":
        identity = Identity(primary_smtp_address=settings.mailbox)
        if settings.client_id:
            return _ClientSecret(
                client_id=settings.client_id, client_secret=secret, tenant_id=settings.tenant, identity=identity
            ), OAUTH2
        token = {"access_token": secret, "token_type": "Bearer"}
        return _AccessToken(access_token=token, identity=identity), OAUTH2
    return _Password(settings.login, secret), NTLM if settings.auth == "ntlm" else BASIC


def open_account(settings: EwsSettings, secret: str) -> Any:
    """An exchangelib ``Account`` for the mailbox (no request is sent unless autodiscover is on)."""
    credentials, auth_type = _credentials(settings, secret)
    access = IMPERSONATION if settings.impersonate else DELEGATE
    with translate_errors():
        if settings.autodiscover:
            config = Configuration(credentials=credentials, auth_type=auth_type, retry_policy=FailFast())
            account = Account(
                settings.mailbox,
                credentials=credentials,
                config=config,
                autodiscover=True,
                access_type=access,
                default_timezone=EWS_UTC,
            )
        else:
            config = Configuration(
                service_endpoint=settings.endpoint,
                credentials=credentials,
                auth_type=auth_type,
                retry_policy=FailFast(),
            )
            account = Account(
                settings.mailbox, config=config, autodiscover=False, access_type=access, default_timezone=EWS_UTC
            )
    with suppress(KeyError):  # the account holds its protocol; the process-wide cache must not grow per sync
        del Protocol[account.protocol.config]
    account.protocol.TIMEOUT = settings.timeout  # per protocol instance: every request has this timeout
    return account


def _name(error: BaseException) -> str:
    text = " ".join(str(error).split())[:300]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _wrapped_busy(error: BaseException) -> ex.ErrorServerBusy | None:
    """The ``ErrorServerBusy`` that ``error`` was raised from, if any: exchangelib's version probe (the first
    request of a connection) re-raises it as ``TransportError("No valid version headers found …")``."""
    seen: set[int] = set()
    cause = error.__cause__ or error.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ex.ErrorServerBusy):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _throttled(error: ex.ErrorServerBusy) -> TransientSourceError:
    return TransientSourceError(f"Exchange is throttling this account ({_name(error)})", retry_after=error.back_off)


@contextmanager
def translate_errors() -> Iterator[None]:
    """Map exchangelib / HTTP errors: throttling and outages → transient, credentials and rights → permanent."""
    permanent = (
        ex.ErrorAccessDenied,
        ex.ErrorImpersonateUserDenied,
        ex.ErrorImpersonationFailed,
        ex.ErrorNonExistentMailbox,
        ex.ErrorFolderNotFound,
        ex.AutoDiscoverFailed,
        ex.RedirectError,
        ex.ErrorInvalidLicense,
    )
    try:
        yield
    except ex.ErrorServerBusy as error:
        raise _throttled(error) from error
    except ex.RateLimitError as error:
        raise TransientSourceError(f"Exchange rate limit ({_name(error)})", retry_after=error.wait) from error
    except InsecureTransportError as error:  # a configuration that cannot work, not a wrong credential
        raise ConfigError(f"ews: OAuth needs TLS: remove tls=0 ({_name(error)})") from error
    except (ex.UnauthorizedError, OAuth2Error) as error:
        raise PermanentSourceError(f"Exchange rejected the credentials ({_name(error)})") from error
    except permanent as error:
        raise PermanentSourceError(f"Exchange refused access ({_name(error)})") from error
    except (ex.EWSError, requests.RequestException) as error:
        busy = _wrapped_busy(error)
        if busy is not None:
            raise _throttled(busy) from error
        raise TransientSourceError(f"Exchange request failed ({_name(error)})") from error

"""URL scheme → connector factory. Adding a source is one module plus one line here.

Extension point: ``CRM_EXTRA_CONNECTORS=scheme=module:Factory,…`` registers more schemes without changing this
table — e.g. a test double such as ``flaky=tests.support.flaky:FlakyConnector``, which worker processes started
by a test pick up from their environment. It is read on every lookup (never at import). A factory may set a
class attribute ``needs_secret = False`` when its sources need no password or token.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib import import_module
from urllib.parse import urlsplit

from sync_service.connectors.base import Connector
from sync_service.errors import ConfigError

# scheme → "module:factory". Imported lazily so that optional network libraries load only when used.
_FACTORIES: dict[str, str] = {
    "maildir": "sync_service.connectors.maildir:MaildirConnector",
    "mbox": "sync_service.connectors.mbox:MboxConnector",
    "eml": "sync_service.connectors.emldir:EmlDirConnector",
    "ics": "sync_service.connectors.icsfile:IcsFileConnector",
    "vcf": "sync_service.connectors.vcffile:VcfFileConnector",
    "imap": "sync_service.connectors.imap:ImapConnector",
    "imaps": "sync_service.connectors.imap:ImapConnector",
    "caldav": "sync_service.connectors.caldav:CalDavConnector",
    "caldavs": "sync_service.connectors.caldav:CalDavConnector",
    "ics+https": "sync_service.connectors.icsfeed:IcsFeedConnector",
    "ics+http": "sync_service.connectors.icsfeed:IcsFeedConnector",
    "ews": "sync_service.connectors.ews:EwsConnector",
    "graph": "sync_service.connectors.graph:GraphConnector",
}


_LOCAL = {"maildir", "mbox", "eml", "ics", "vcf"}
_FEEDS = {"ics+https", "ics+http"}


def _extra() -> dict[str, str]:
    """Schemes from ``CRM_EXTRA_CONNECTORS`` (``scheme=module:Factory`` separated by commas)."""
    extra: dict[str, str] = {}
    for entry in os.environ.get("CRM_EXTRA_CONNECTORS", "").split(","):
        if not entry.strip():
            continue
        scheme, sep, target = entry.partition("=")
        if not sep or ":" not in target or not scheme.strip():
            raise ConfigError(f"CRM_EXTRA_CONNECTORS: expected scheme=module:Factory, got {entry.strip()!r}")
        extra[scheme.strip().lower()] = target.strip()
    return extra


def _factories() -> dict[str, str]:
    return {**_extra(), **_FACTORIES}  # the built-in schemes cannot be replaced


def schemes() -> list[str]:
    return sorted(_factories())


def _factory(scheme: str) -> Callable[..., Connector]:
    target = _factories().get(scheme)
    if target is None:
        raise ConfigError(f"unsupported source URL scheme {scheme!r} (supported: {', '.join(schemes())})")
    module_name, _, attr = target.partition(":")
    try:
        factory: Callable[..., Connector] = getattr(import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"connector for {scheme!r} cannot be loaded from {target!r}: {error}") from None
    return factory


def open_connector(url: str, secret: str | None = None) -> Connector:
    """Build the connector for ``url``. ``secret`` (password, token) never appears in the URL."""
    return _factory(urlsplit(url).scheme.lower())(url, secret=secret)


def needs_secret(url: str) -> bool:
    """Whether the source authenticates (network sources) — local files do not."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in _LOCAL:
        return False
    if scheme in _FEEDS:  # a public calendar feed needs no secret; one behind HTTP auth names its user
        return urlsplit(url).username is not None
    if scheme in _FACTORIES:
        return True
    return bool(getattr(_factory(scheme), "needs_secret", True))

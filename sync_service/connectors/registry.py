"""URL scheme → connector factory. Adding a source is one module plus one line here."""

from __future__ import annotations

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
}


def schemes() -> list[str]:
    return sorted(_FACTORIES)


def open_connector(url: str, secret: str | None = None) -> Connector:
    """Build the connector for ``url``. ``secret`` (password, token) never appears in the URL."""
    scheme = urlsplit(url).scheme.lower()
    target = _FACTORIES.get(scheme)
    if target is None:
        raise ConfigError(f"unsupported source URL scheme {scheme!r} (supported: {', '.join(schemes())})")
    module_name, _, attr = target.partition(":")
    factory: Callable[..., Connector] = getattr(import_module(module_name), attr)
    return factory(url, secret=secret)


def needs_secret(url: str) -> bool:
    """Whether the source authenticates (network sources) — local files do not."""
    return urlsplit(url).scheme.lower() not in {"maildir", "mbox", "eml", "ics", "vcf"}

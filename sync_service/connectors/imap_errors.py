"""IMAP error families and the translation of imaplib / imap-tools / socket errors into them.

A lost connection, a timeout or a ``BYE`` become ``ConnectionLost`` (the connector reconnects with backoff);
refused credentials ``PermanentSourceError`` (``TransientSourceError`` for ``[UNAVAILABLE]``-like answers); a
missing folder ``FolderMissing``. Messages name the user, host and what was being done — never the secret: a
server's answer is quoted, and some servers echo the credentials in it, so what the session sent is masked.
"""

from __future__ import annotations

import imaplib
import ssl
from collections.abc import Callable, Iterable

from imap_tools.errors import MailboxLoginError, MailboxStarttlsError

from sync_service.connectors.imap_config import ImapConfig
from sync_service.errors import PermanentSourceError, TransientSourceError
from sync_service.redact import redact_secret

_TEMPORARY = ("[UNAVAILABLE]", "[INUSE]", "[LIMIT]", "[SERVERBUG]")


def is_temporary(reason: str) -> bool:
    """Whether a refused login says "try again later" rather than "wrong credentials"."""
    return any(code in reason for code in _TEMPORARY)


class ConnectionLost(TransientSourceError):
    """The connection broke (network error, timeout, server shutdown): reconnect and try again."""


class FolderMissing(PermanentSourceError):
    """The folder does not exist (or cannot be opened) on the server."""


class translated:
    """Map imaplib / imap-tools / socket errors to the source error families, without any secret.

    ``hidden`` returns what must not appear in a message (``ImapSession.hidden``: the secret, the token and
    the SASL responses sent); it is asked only when an error is translated, so it covers a token fetched
    inside the block."""

    def __init__(self, config: ImapConfig, doing: str, hidden: Callable[[], Iterable[str | None]]) -> None:
        self.config, self.doing, self.hidden = config, doing, hidden

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is None or isinstance(error, PermanentSourceError | TransientSourceError):
            return
        where, secrets = f"IMAP {self.config.where}", tuple(self.hidden())
        if isinstance(error, MailboxLoginError | MailboxStarttlsError) or (
            isinstance(error, imaplib.IMAP4.error)
            and not isinstance(error, imaplib.IMAP4.abort)
            and self.doing == "logging in"
        ):
            reason = _reason(error, secrets)
            if is_temporary(reason):
                raise TransientSourceError(f"{where}: login refused for now while {self.doing}: {reason}") from None
            raise PermanentSourceError(f"{where}: login failed (check the user and the secret): {reason}") from None
        if isinstance(error, ssl.SSLCertVerificationError):
            raise PermanentSourceError(f"{where}: TLS certificate not trusted: {error.verify_message}") from None
        if isinstance(error, imaplib.IMAP4.abort | OSError | EOFError):
            raise ConnectionLost(f"{where}: connection lost while {self.doing}: {_reason(error, secrets)}") from None
        if isinstance(error, imaplib.IMAP4.error):
            raise ConnectionLost(f"{where}: unexpected answer while {self.doing}: {_reason(error, secrets)}") from None


def _reason(error: BaseException, secrets: tuple[str | None, ...]) -> str:
    """The error's text on one line, the secrets masked first: a multi-line secret is still found whole, and
    the cut at 300 characters cannot leave part of one behind."""
    text = redact_secret(str(error) or type(error).__name__, *secrets)
    return text.replace("\r", " ").replace("\n", " ")[:300]


"""IMAP error families and the translation of imaplib / imap-tools / socket errors into them.

A lost connection, a timeout or a ``BYE`` become ``ConnectionLost`` (the connector reconnects with backoff); a
server that never greeted in time or trickled an answer past its deadline (``imap_client``) ``Unresponsive``,
remembered for a while (``imap_unanswered``) and not reconnected to;
refused credentials ``PermanentSourceError`` (``TransientSourceError`` for ``[UNAVAILABLE]``-like answers); a
missing folder ``FolderMissing``. Messages name the user, host and what was being done — never the secret: a
server's answer is quoted, and some servers echo the credentials in it, so what the session sent is masked.

The server's answer is quoted as its own text: imap-tools' wrapper (``Response status "OK" expected, but "NO"
received. Data: [b'…']``) and imaplib's bytes ``repr`` (``[b'…']``) are taken off.
"""

from __future__ import annotations

import ast
import imaplib
import re
import ssl
from collections.abc import Callable, Iterable

from imap_tools.errors import MailboxLoginError, MailboxStarttlsError, UnexpectedCommandStatusError

from sync_service.connectors.imap_client import AnswerTooSlow, NoGreeting
from sync_service.connectors.imap_config import ImapConfig
from sync_service.connectors.imap_unanswered import UNANSWERED
from sync_service.errors import PermanentSourceError, TransientSourceError
from sync_service.redact import redact_secret

_TEMPORARY = ("[UNAVAILABLE]", "[INUSE]", "[LIMIT]", "[SERVERBUG]")


def is_temporary(reason: str) -> bool:
    """Whether a refused login says "try again later" rather than "wrong credentials"."""
    return any(code in reason for code in _TEMPORARY)


class ConnectionLost(TransientSourceError):
    """The connection broke (network error, timeout, server shutdown): reconnect and try again."""


class Unresponsive(TransientSourceError):
    """The server did not answer in time (no greeting, or an answer past its deadline): a new connection right
    away would fare no better, so the connector does not make one; later attempts wait (``imap_unanswered``)."""


class FolderMissing(PermanentSourceError):
    """The folder does not exist (or cannot be opened) on the server."""


class translated:
    """Map imaplib / imap-tools / socket errors to the source error families, without any secret.

    ``hidden`` returns what must not appear in a message (``ImapSession.hidden``: the secret, the token and
    the SASL responses sent); it is asked only when an error is translated, so it covers a token fetched
    inside the block.

    ``connecting=True`` (greeting, login, capabilities): a timeout there is the server not answering, not a lost
    connection — ``Unresponsive`` like a trickle; once the session is ready, a stall is a lost connection."""

    def __init__(
        self, config: ImapConfig, doing: str, hidden: Callable[[], Iterable[str | None]], connecting: bool = False
    ) -> None:
        self.config, self.doing, self.hidden, self.connecting = config, doing, hidden, connecting

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
        said = self._unanswered(error)
        if said is not None:
            late = isinstance(error, AnswerTooSlow) and not self.connecting  # a too small deadline, perhaps
            reason = f"{where}: {said} while {self.doing}" + (" (URL options deadline=, batch=)" if late else "")
            UNANSWERED.note(self.config.where, reason)
            raise Unresponsive(reason) from None
        if isinstance(error, imaplib.IMAP4.abort | OSError | EOFError):
            raise ConnectionLost(f"{where}: connection lost while {self.doing}: {_reason(error, secrets)}") from None
        if isinstance(error, imaplib.IMAP4.error | UnexpectedCommandStatusError):
            raise ConnectionLost(f"{where}: unexpected answer while {self.doing}: {_reason(error, secrets)}") from None

    def _unanswered(self, error: BaseException) -> str | None:
        """What the server failed to do in time, or None when ``error`` is not that."""
        if isinstance(error, NoGreeting | AnswerTooSlow):
            return str(error)
        if self.connecting and isinstance(error, TimeoutError):
            return f"no answer within {self.config.timeout:g} s"
        return None


def _reason(error: BaseException, secrets: tuple[str | None, ...]) -> str:
    """The server's text of the error on one line, the secrets masked first: a multi-line secret is still found
    whole, and the cut at 300 characters cannot leave part of one behind.

    Masked once the bytes reprs are decoded, i.e. as the server echoed a secret (``redact_secret`` knows the
    IMAP-quoted and base64 forms too). Should the raw text show a secret that the decoded one no longer shows in
    a known form, the raw text, masked, is kept: cleaning never costs the masking."""
    raw, cleaned = str(error) or type(error).__name__, server_text(error)
    text = redact_secret(cleaned, *secrets)
    if text == cleaned and redact_secret(raw, *secrets) != raw:
        text = redact_secret(raw, *secrets)
    return text.replace("\r", " ").replace("\n", " ")[:300]


# A bytes literal as ``repr`` writes it (not the "b'" ending a word, as in "Herb's"), or a list of them.
_BYTES = r"""(?<![\w'"])b(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")"""
_BYTES_ONE = re.compile(_BYTES)
_BYTES_REPR = re.compile(rf"\[\s*(?P<list>{_BYTES}(?:\s*,\s*{_BYTES})*)\s*,?\s*\]|{_BYTES}")


def server_text(error: BaseException) -> str:
    """What the server said, decoded: an imap-tools status error gives its data without the "Response status
    … expected" wrapper; a ``b'…'`` (or ``[b'…', …]``) repr in any other error's text is replaced by its text."""
    if isinstance(error, UnexpectedCommandStatusError):
        typ, data = _result(error.command_result)
        said = " ".join(t for t in (_decoded(d).strip() for d in data) if t)
        return said or f"the server answered {typ}"
    return _unrepr(str(error)) or type(error).__name__


def _result(result: object) -> tuple[str, list[object]]:
    if isinstance(result, tuple | list) and len(result) == 2:
        typ, data = result
        return str(typ), list(data) if isinstance(data, list | tuple) else [data]
    return "?", [result]


def _decoded(value: object) -> str:
    """A piece of an IMAP answer as text (a literal's ``(head, body)`` tuple: its parts joined)."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, tuple | list):
        return " ".join(_decoded(v) for v in value)
    return str(value)


def _unrepr(text: str) -> str:
    """``text`` with each bytes repr (or list of them) replaced by its decoded text, in one pass: what a server
    said is never decoded twice."""

    def one(literal: str) -> str:
        try:
            value = ast.literal_eval(literal)
        except (ValueError, SyntaxError):
            return literal
        return _decoded(value) if isinstance(value, bytes) else literal

    def replace(match: re.Match[str]) -> str:
        if match.group("list") is None:
            return one(match.group(0))
        return " ".join(one(m.group(0)) for m in _BYTES_ONE.finditer(match.group("list")))

    return _BYTES_REPR.sub(replace, text)

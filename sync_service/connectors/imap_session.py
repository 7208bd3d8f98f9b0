"""One logged-in IMAP connection (imap-tools for connecting and logging in, imaplib commands underneath).

Everything here is read-only: folders are opened with EXAMINE and bodies read with ``BODY.PEEK[]``, so the
sync never sets ``\\Seen`` nor any other flag. Every socket operation has the configured timeout, and every
command (the greeting too) an overall deadline (``imap_client``, ``imap_deadline``): a server that trickles
its answers fails like a silent one.

Errors are translated by ``imap_errors.translated``: ``ConnectionLost`` (reconnect with backoff),
``Unresponsive`` (no greeting in time, an answer past its deadline: remembered by ``imap_unanswered``, and the
mailbox's server is not connected to again for a while), refused credentials ``PermanentSourceError``, a
missing folder ``FolderMissing``; never with the secret in the message.

``auth=xoauth2``: the access token comes from ``imap_oauth`` (the stored token, or one refreshed from a stored
refresh grant). When the server refuses a refreshed token, it is dropped and the login is tried once more with
a fresh one (the token may have been revoked before its announced expiry).
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import imap_tools
from imap_tools.errors import MailboxLoginError
from imap_tools.utils import encode_folder

from sync_service.connectors.imap_client import PlainMailBox, StartTlsMailBox, TlsMailBox, allowing
from sync_service.connectors.imap_config import ImapConfig
from sync_service.connectors.imap_cursor import from_ranges, to_ranges
from sync_service.connectors.imap_errors import (
    ConnectionLost,
    FolderMissing,
    Unresponsive,
    is_temporary,
    translated,
)
from sync_service.connectors.imap_oauth import TokenSource, token_source
from sync_service.connectors.imap_unanswered import UNANSWERED
from sync_service.errors import PermanentSourceError


@dataclass(frozen=True, slots=True)
class FolderStatus:
    uidvalidity: int
    uidnext: int
    exists: int
    highestmodseq: int  # 0 without CONDSTORE
    vanished: str | None  # QRESYNC: UID ranges expunged since the given mod-sequence; None when not asked


_FETCH_UID = re.compile(rb"\bUID (\d+)")
_FETCH_MODSEQ = re.compile(rb"\bMODSEQ \((\d+)\)")
_ESEARCH_ALL = re.compile(rb"\bALL ([\d:,]+)")


class ImapSession:
    def __init__(self, config: ImapConfig, secret: str | None) -> None:
        self.config = config
        self._secret = secret
        self._token: str | None = None  # the OAuth2 access token last sent (xoauth2)
        self._tokens: TokenSource | None = None
        if config.auth == "xoauth2" and secret:
            self._tokens = token_source(secret, config.where, config.timeout)
        self._box: imap_tools.BaseMailBox | None = None
        self.capabilities: frozenset[str] = frozenset()
        self.selected: str | None = None

    # -- connection ------------------------------------------------------------------------------------
    @property
    def client(self) -> imaplib.IMAP4:
        return self.box.client

    @property
    def box(self) -> imap_tools.BaseMailBox:
        """The imap-tools mailbox of the connection (connecting when needed)."""
        if self._box is None:
            self.connect()
        assert self._box is not None
        return self._box

    def connect(self) -> None:
        self.close()
        config = self.config
        if not self._secret:
            raise PermanentSourceError(f"no password or token is stored for IMAP {config.where}")
        held = UNANSWERED.held(config.where)
        if held is not None:  # it did not answer moments ago: fail at once (``imap_unanswered``)
            raise Unresponsive(held)
        with translated(config, "connecting", self.hidden, connecting=True):
            box = self._open()
        UNANSWERED.forget(config.where)
        try:
            with translated(config, "logging in", self.hidden, connecting=True):
                box = self._login(box)  # a refused OAuth2 token is retried on a new connection
            with translated(config, "reading the server's capabilities", self.hidden, connecting=True):
                self.capabilities = self._capabilities(box.client)
                for extension in ("QRESYNC", "CONDSTORE"):  # QRESYNC implies CONDSTORE
                    if extension in self.capabilities:
                        box.client._simple_command("ENABLE", extension)
                        break
        except BaseException:
            _drop(box)
            raise
        self._box, self.selected = box, None

    def _open(self) -> imap_tools.BaseMailBox:
        config, context = self.config, ssl.create_default_context()
        where, timeout, deadline = (config.host, config.port), config.timeout, config.command_deadline
        if config.scheme == "imaps":
            return TlsMailBox(*where, timeout, deadline, context)
        if config.starttls == "require":
            return StartTlsMailBox(*where, timeout, deadline, context)
        box = PlainMailBox(*where, timeout, deadline)
        if config.starttls == "auto" and "STARTTLS" in box.client.capabilities:
            box.client.starttls(context)
        return box

    def _login(self, box: imap_tools.BaseMailBox) -> imap_tools.BaseMailBox:
        config, secret = self.config, self._secret or ""
        if self._tokens is not None:
            return self._login_xoauth2(box, self._tokens)
        if "LOGINDISABLED" in box.client.capabilities:
            raise PermanentSourceError(
                f"IMAP server {config.host}:{config.port} refuses a plain-text login: use imaps:// or STARTTLS"
            )
        elif (config.username + secret).isascii():
            box.login(config.username, secret, initial_folder=None)
        else:
            box.login_utf8(config.username, secret, initial_folder=None)
        return box

    def _login_xoauth2(self, box: imap_tools.BaseMailBox, tokens: TokenSource) -> imap_tools.BaseMailBox:
        user = self.config.username
        token = self._token = tokens.token()
        try:
            box.xoauth2(user, token, initial_folder=None)
            return box
        except (MailboxLoginError, imaplib.IMAP4.error) as error:  # imaplib's own error for a refused AUTHENTICATE
            if isinstance(error, imaplib.IMAP4.abort) or not tokens.refreshable or is_temporary(str(error)):
                raise
        tokens.invalidate(token)
        fresh = self._token = tokens.token()
        _drop(box, logout=True)
        box = self._open()  # a new connection: servers slow down every further attempt on a refused one
        try:
            box.xoauth2(user, fresh, initial_folder=None)
        except BaseException:
            _drop(box)
            raise
        return box

    def rotated_secret(self) -> str | None:
        """The new secret when a refresh grant's refresh token rotated (to be stored by the caller)."""
        return self._tokens.rotated_secret() if self._tokens is not None else None

    def hidden(self) -> tuple[str | None, ...]:
        """What a server may echo of our credentials, to be masked in errors: the secret (and a rotated one),
        the access token sent, and the SASL responses they went in — AUTHENTICATE PLAIN for a non-ASCII login,
        XOAUTH2 — which are base64 on the wire."""
        user, secret, token = self.config.username, self._secret, self._token
        return (
            secret,
            self.rotated_secret(),
            token,
            f"\0{user}\0{secret}" if secret else None,
            f"user={user}\1auth=Bearer {token}\1\1" if token else None,
        )

    @staticmethod
    def _capabilities(client: imaplib.IMAP4) -> frozenset[str]:
        _, data = client.capability()
        words = b" ".join(d for d in data if isinstance(d, bytes)).decode("ascii", "replace").upper().split()
        return frozenset(words) | frozenset(c.upper() for c in client.capabilities)

    def close(self) -> None:
        box, self._box, self.selected = self._box, None, None
        if box is not None:
            _drop(box, logout=True)

    # -- folders ---------------------------------------------------------------------------------------
    def list_folders(self) -> list[tuple[str, tuple[str, ...]]]:
        """``(name, flags)`` of every folder (decoded from modified UTF-7)."""
        box = self.box
        with translated(self.config, "listing folders", self.hidden):
            return [(f.name, tuple(f.flags)) for f in box.folder.list()]

    def examine(self, folder: str, qresync: tuple[int, int] | None = None) -> FolderStatus:
        """Open ``folder`` read-only. With ``qresync=(uidvalidity, modseq)`` (QRESYNC servers) the answer also
        names the UIDs expunged since ``modseq`` (only if ``uidvalidity`` still holds)."""
        client = self.client
        client.untagged_responses = {}
        args: list[str | bytes] = [encode_folder(folder)]
        use_qresync = qresync is not None and qresync[1] > 0 and "QRESYNC" in self.capabilities
        if use_qresync and qresync is not None:
            args.append(f"(QRESYNC ({qresync[0]} {qresync[1]}))")
        self.selected = None
        with translated(self.config, f"opening folder {folder!r}", self.hidden):
            typ, data = client._simple_command("EXAMINE", *args)
        if typ != "OK":
            raise FolderMissing(
                f"cannot open IMAP folder {folder!r} for {self.config.where}: {_text(data)}"
            )
        client.state, client.is_readonly = "SELECTED", True  # as imaplib.select(readonly=True) would set them
        self.selected = folder
        untagged = client.untagged_responses
        vanished = [v for v in untagged.get("VANISHED", []) if isinstance(v, bytes)]
        return FolderStatus(
            uidvalidity=_int(untagged.get("UIDVALIDITY")),
            uidnext=_int(untagged.get("UIDNEXT")),
            exists=_int(untagged.get("EXISTS")),
            highestmodseq=_int(untagged.get("HIGHESTMODSEQ")),
            vanished=",".join(v.decode().replace("(EARLIER)", "").strip() for v in vanished) if use_qresync else None,
        )

    def search_uids(self, above: int = 0) -> list[int]:
        """UIDs in the selected folder (those ``> above``), via ESEARCH when offered (compact ranges)."""
        client = self.client
        criteria = f"UID {above + 1}:*" if above else "ALL"
        with translated(self.config, f"listing the messages of {self.selected!r}", self.hidden):
            if "ESEARCH" in self.capabilities:
                client.untagged_responses.pop("ESEARCH", None)
                typ, data = client.uid("SEARCH", f"RETURN (ALL) {criteria}")
                found = b" ".join(x for x in client.untagged_responses.pop("ESEARCH", []) if isinstance(x, bytes))
                match = _ESEARCH_ALL.search(found)
                uids = from_ranges(match.group(1).decode()) if match else []
            else:
                typ, data = client.uid("SEARCH", criteria)
                uids = sorted({int(x) for chunk in data if isinstance(chunk, bytes) for x in chunk.split()})
        if typ != "OK":
            raise ConnectionLost(f"IMAP SEARCH failed for {self.config.where}: {_text(data)}")
        return [u for u in uids if u > above]  # "n:*" always matches the last message, even below n

    def fetch(self, uids: Sequence[int]) -> Iterator[tuple[int, int, bytes]]:
        """``(uid, modseq, bytes)`` of ``uids`` in the selected folder, one FETCH per batch; expunged ones skipped."""
        client, batch = self.client, self.config.fetch_batch
        items = "(UID MODSEQ BODY.PEEK[])" if "CONDSTORE" in self.capabilities else "(UID BODY.PEEK[])"
        for start in range(0, len(uids), batch):
            chunk = uids[start : start + batch]
            with translated(self.config, f"fetching messages of {self.selected!r}", self.hidden), allowing(
                client, len(chunk)
            ):
                typ, data = client.uid("FETCH", to_ranges(chunk), items)
            if typ != "OK":
                raise ConnectionLost(f"IMAP FETCH failed for {self.config.where}: {_text(data)}")
            yield from _parse_fetch(data)


def _parse_fetch(data: list[object]) -> Iterator[tuple[int, int, bytes]]:
    for part in data:
        if isinstance(part, tuple) and len(part) == 2 and isinstance(part[0], bytes) and isinstance(part[1], bytes):
            head = part[0]
            uid = _FETCH_UID.search(head)
            if uid is None or b"BODY[]" not in head:
                continue
            modseq = _FETCH_MODSEQ.search(head)
            yield int(uid.group(1)), int(modseq.group(1)) if modseq else 0, part[1]


def _text(data: object) -> str:
    if isinstance(data, list | tuple):
        return " ".join(_text(d) for d in data)
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)


def _int(values: object) -> int:
    if isinstance(values, list) and values:
        value = values[-1]
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
        digits = text.split()[0] if text.split() else ""
        return int(digits) if digits.isdigit() else 0
    return 0


def _drop(box: imap_tools.BaseMailBox, logout: bool = False) -> None:
    """Close a connection, politely if asked, ignoring a connection that is already gone."""
    try:
        if logout:
            box.client.logout()
        else:
            box.client.shutdown()
    except (imaplib.IMAP4.error, OSError, EOFError, ValueError):
        with contextlib.suppress(OSError, ValueError):
            box.client.shutdown()

"""IMAP IDLE (RFC 2177): wait until a folder changes, for near-real-time pickup of mailboxes with ``?idle=1``.

``FolderWatch(url, secret, folder)`` holds its own connection (never the sync's). ``open()`` connects and
EXAMINEs the folder; ``wait(timeout, stop)`` IDLEs for at most ``timeout`` seconds (capped at 29 minutes, as the
RFC advises: the caller simply calls ``wait`` again, which issues a new IDLE). ``wait`` returns True when the
server announced new or expunged mail (``EXISTS``, ``EXPUNGE``, ``VANISHED``) — the caller then runs an
ordinary incremental sync, which finds exactly what changed from the stored cursor — and False on a quiet
timeout, a keep-alive, a flag change (``FETCH``: not a change for the CRM) or when ``stop`` is set (checked at
least every ``STOP_CHECK`` seconds).

Nothing is missed between two IDLEs: a change that happens while no IDLE runs is announced by the server with
the answer to the next command (the ``IDLE`` itself or the ``DONE``), and imaplib files every untagged answer
under ``untagged_responses``, which ``wait`` inspects besides the lines read while idling. After a lost
connection, ``open()`` compares UIDVALIDITY / UIDNEXT / EXISTS with what the previous connection saw and
returns True when they differ (mail arrived while disconnected).

Errors: a server without IDLE → ``PermanentSourceError`` (such a mailbox is synced on the schedule); connection
trouble → ``TransientSourceError`` after the connection is dropped, so the next ``open``/``wait`` reconnects;
refused credentials → ``PermanentSourceError``. No message carries the secret.
"""

from __future__ import annotations

import imaplib
import select
import socket
import threading
import time

from sync_service.connectors.imap_config import ImapConfig
from sync_service.connectors.imap_errors import translated
from sync_service.connectors.imap_session import ImapSession
from sync_service.errors import PermanentSourceError, TransientSourceError

MAX_IDLE_SECONDS = 29 * 60
STOP_CHECK = 0.5  # seconds between two looks at the stop event while idling
_CHANGE_TYPES = ("EXISTS", "EXPUNGE", "VANISHED")


class FolderWatch:
    def __init__(self, url: str, secret: str | None, folder: str = "INBOX") -> None:
        self.config = ImapConfig.from_url(url)
        self.folder = folder
        self.session = ImapSession(self.config, secret)
        self._seen: tuple[int, int, int] | None = None  # (UIDVALIDITY, UIDNEXT, EXISTS) at the last EXAMINE

    def open(self) -> bool:
        """Connect and EXAMINE the folder unless that is done. True: it changed since the previous connection."""
        session = self.session
        if session.selected == self.folder:
            return False
        try:
            status = session.examine(self.folder)
            if "IDLE" not in session.capabilities:
                raise PermanentSourceError(f"IMAP {self.config.where} does not offer IDLE")
        except TransientSourceError:
            session.close()
            raise
        seen, self._seen = self._seen, (status.uidvalidity, status.uidnext, status.exists)
        return seen is not None and seen != self._seen

    def wait(self, timeout: float, stop: threading.Event | None = None) -> bool:
        """Block until the folder changes (True), or ``timeout`` passes or ``stop`` is set (False)."""
        if self.open():
            return True
        client = self.session.client
        client.untagged_responses = {}
        deadline = time.monotonic() + min(max(timeout, 0.1), MAX_IDLE_SECONDS)
        try:
            with translated(self.config, f"waiting for changes in {self.folder!r}", self.session.hidden):
                _idle(client, deadline, stop)
        except TransientSourceError:
            self.session.close()
            raise
        return any(client.untagged_responses.get(kind) for kind in _CHANGE_TYPES)

    def rotated_secret(self) -> str | None:
        """A rotated OAuth2 refresh token, for the caller to store (see ``imap_oauth.py``)."""
        return self.session.rotated_secret()

    def close(self) -> None:
        self.session.close()


def _idle(client: imaplib.IMAP4, deadline: float, stop: threading.Event | None) -> None:
    """One IDLE command: start, wait for something to read (or the deadline, or ``stop``), DONE.

    Every untagged answer — before ``+ idling``, during the IDLE, before DONE's tagged OK — is read by imaplib's
    response parser and filed under ``client.untagged_responses``; nothing is read outside it."""
    tag = client._command("IDLE")
    while client._get_response() is not None:  # None: the "+ idling" continuation
        if client.tagged_commands.get(tag):
            raise imaplib.IMAP4.error(f"IDLE refused: {client.tagged_commands.pop(tag)!r}")
    try:
        while not any(client.untagged_responses.get(kind) for kind in _CHANGE_TYPES) and not _buffered(client):
            left = deadline - time.monotonic()
            if left <= 0 or (stop is not None and stop.is_set()):
                break
            if _readable(client.sock, min(left, STOP_CHECK)):
                break  # something to read: end the IDLE and read it with DONE's answer
    finally:
        client.send(b"DONE\r\n")
        while not client.tagged_commands.get(tag):
            client._get_response()
    result = client.tagged_commands.pop(tag)
    if not result or result[0] != "OK":
        raise imaplib.IMAP4.error(f"IDLE ended with {result!r}")


def _readable(sock: socket.socket, seconds: float) -> bool:
    """``poll`` rather than ``select``: a process watching many folders holds more than 1,024 sockets."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
    return bool(poller.poll(seconds * 1000))


def _buffered(client: object) -> bool:
    """Whether answers already sit in imaplib's read buffer (where ``select`` cannot see them)."""
    sock, reader = getattr(client, "sock", None), getattr(client, "file", None)
    if sock is None or reader is None:
        return False
    previous = sock.gettimeout()
    sock.settimeout(0)
    try:
        return bool(reader.peek(1))
    except (OSError, ValueError):
        return False
    finally:
        sock.settimeout(previous)

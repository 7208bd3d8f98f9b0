"""imaplib clients whose every command has an overall deadline (audit 17a F6), and imap-tools mailboxes on them.

imaplib reads its answers through ``self.file`` (``sock.makefile('rb')``, set when connecting and again after
STARTTLS). Here that reader is replaced, whenever imaplib sets it, by one over ``DeadlineIO``: before each
``recv`` it looks at the command's budget (``imap_deadline.CommandClock``, restarted by every ``send`` and at
the connection) and lowers the socket timeout to what is left of it. A server that trickles its answer then
fails like a silent one, with ``AnswerTooSlow`` — or ``NoGreeting`` when it never completed its greeting
(nor the TCP connection or TLS handshake before it). Both are ``TimeoutError``: code that knows only
``OSError`` treats them as a lost connection. A non-blocking peek (``imap_idle._buffered``) is never bounded.

Sending needs nothing more: ``sendall`` with a timeout bounds the whole send, and a TLS handshake is bounded
as a whole by the socket timeout (CPython keeps one deadline across its reads).
"""

from __future__ import annotations

import contextlib
import imaplib
import io
import socket
import ssl
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import imap_tools
from imap_tools.errors import MailboxStarttlsError
from imap_tools.utils import check_command_status

from sync_service.connectors.imap_deadline import CommandClock

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


class NoGreeting(TimeoutError):
    """The server did not greet in time: no TCP connection, no TLS handshake, or no (complete) greeting."""


class AnswerTooSlow(TimeoutError):
    """An answer was not complete within its command's budget (a trickle)."""

    def __init__(self, spent: float, budget: float) -> None:
        super().__init__(f"the server's answer was not complete after {spent:.1f} s (deadline {budget:.1f} s)")
        self.spent, self.budget = spent, budget


class DeadlineIO(socket.SocketIO):
    """The raw reader under imaplib's ``file``: every blocking read ends by the command's budget."""

    def __init__(self, sock: socket.socket, clock: CommandClock) -> None:
        super().__init__(sock, "rb")
        self._clock = clock

    def readinto(self, b: Any) -> int | None:
        sock, clock = self._sock, self._clock  # type: ignore[attr-defined]  # SocketIO keeps its socket there
        per_read = sock.gettimeout()
        left = clock.left(time.monotonic())
        if left is None or per_read == 0:  # nothing sent yet, or a non-blocking peek
            return self._counted(super().readinto(b))
        if left <= 0:
            raise self._late()
        if per_read is not None and per_read <= left:
            return self._counted(super().readinto(b))
        sock.settimeout(left)
        try:
            return self._counted(super().readinto(b))
        except TimeoutError:
            raise self._late() from None
        finally:
            sock.settimeout(per_read)

    def _counted(self, count: int | None) -> int | None:
        self._clock.note(count or 0)
        return count

    def _late(self) -> AnswerTooSlow:
        """The error, and this reader closed to further reads (as ``SocketIO`` after a timeout): the answer is
        cut, and a LOGOUT on the way out must not wait for the rest of the trickle."""
        self._timeout_occurred = True
        return AnswerTooSlow(self._clock.spent(time.monotonic()), self._clock.budget())


class _Deadlined(imaplib.IMAP4):
    """The deadline for ``imaplib.IMAP4`` and ``IMAP4_SSL`` (mixed in before either)."""

    _clock: CommandClock
    _reader: io.BufferedReader | None = None

    @property  # type: ignore[override]
    def file(self) -> io.BufferedReader | None:
        return self._reader

    @file.setter
    def file(self, reader: Any) -> None:
        """imaplib sets ``sock.makefile('rb')`` (connecting, STARTTLS): read through ``DeadlineIO`` instead."""
        if reader is not None and not isinstance(getattr(reader, "raw", None), DeadlineIO):
            reader.close()
            reader = io.BufferedReader(DeadlineIO(self.sock, self._clock))
        self._reader = reader

    def _create_socket(self, timeout: float | None) -> socket.socket:
        self._clock.start(time.monotonic())  # the greeting's budget counts from the connection
        try:
            return super()._create_socket(timeout)  # type: ignore[misc]
        except TimeoutError:
            raise NoGreeting(f"no connection to the server within {timeout or 0:g} s") from None

    def _connect(self) -> None:
        try:
            super()._connect()  # type: ignore[misc]
        except TimeoutError as error:
            if getattr(self, "welcome", None) is not None:  # greeted: a later command's timeout
                raise
            if isinstance(error, AnswerTooSlow):
                late = f"after {error.spent:.1f} s (deadline {error.budget:.1f} s)"
                raise NoGreeting(f"the server's greeting was not complete {late}") from None
            raise NoGreeting(f"the server did not greet within {self.sock.gettimeout() or 0:g} s") from None

    def send(self, data: ReadableBuffer) -> None:
        self._clock.start(time.monotonic())
        super().send(data)

    @contextlib.contextmanager
    def allowing(self, messages: int) -> Iterator[None]:
        """Commands sent inside get the per-message allowance of a FETCH of ``messages`` messages."""
        previous, self._clock.messages = self._clock.messages, messages
        try:
            yield
        finally:
            self._clock.messages = previous


class DeadlineIMAP4(_Deadlined, imaplib.IMAP4):
    def __init__(self, host: str, port: int, timeout: float, deadline: float) -> None:
        self._clock = CommandClock(deadline)
        imaplib.IMAP4.__init__(self, host, port, timeout)


class DeadlineIMAP4_SSL(_Deadlined, imaplib.IMAP4_SSL):  # type: ignore[misc]  # ``file``: a property here
    def __init__(self, host: str, port: int, timeout: float, deadline: float, ssl_context: ssl.SSLContext) -> None:
        self._clock = CommandClock(deadline)
        imaplib.IMAP4_SSL.__init__(self, host, port, ssl_context=ssl_context, timeout=timeout)


class TlsMailBox(imap_tools.MailBox):
    """``imaps://``: imap-tools' ``MailBox`` on a ``DeadlineIMAP4_SSL``."""

    def __init__(self, host: str, port: int, timeout: float, deadline: float, ssl_context: ssl.SSLContext) -> None:
        self._deadline = deadline
        super().__init__(host, port, timeout=timeout, ssl_context=ssl_context)

    def _get_mailbox_client(self) -> imaplib.IMAP4:
        return DeadlineIMAP4_SSL(self._host, self._port, self._timeout, self._deadline, self._ssl_context)


class PlainMailBox(imap_tools.MailBoxUnencrypted):
    """``imap://``: imap-tools' ``MailBoxUnencrypted`` on a ``DeadlineIMAP4`` (STARTTLS is up to the caller)."""

    def __init__(self, host: str, port: int, timeout: float, deadline: float) -> None:
        self._deadline = deadline
        super().__init__(host, port, timeout=timeout)

    def _get_mailbox_client(self) -> imaplib.IMAP4:
        return DeadlineIMAP4(self._host, self._port, self._timeout, self._deadline)


class StartTlsMailBox(imap_tools.MailBoxStartTls):
    """``imap://`` with ``starttls=require``: imap-tools' ``MailBoxStartTls`` on a ``DeadlineIMAP4``."""

    def __init__(self, host: str, port: int, timeout: float, deadline: float, ssl_context: ssl.SSLContext) -> None:
        self._deadline = deadline
        super().__init__(host, port, timeout=timeout, ssl_context=ssl_context)

    def _get_mailbox_client(self) -> imaplib.IMAP4:
        client = DeadlineIMAP4(self._host, self._port, self._timeout, self._deadline)
        try:
            check_command_status(client.starttls(self._ssl_context), MailboxStarttlsError)
        except BaseException:
            with contextlib.suppress(OSError):
                client.shutdown()
            raise
        return client


def allowing(client: imaplib.IMAP4, messages: int) -> contextlib.AbstractContextManager[None]:
    """``client.allowing(messages)`` on a deadline client; nothing on another (a test's stand-in)."""
    return client.allowing(messages) if isinstance(client, _Deadlined) else contextlib.nullcontext()

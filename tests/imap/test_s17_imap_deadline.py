"""An IMAP server that trickles bytes or stays silent cannot hang a sync (audit 17a F6, F12).

Fake servers on 127.0.0.1 (a thread each): a *tarpit* that greets with ``* OK `` and then sends one byte every
0.05 s — never a line end, so the socket timeout never fires —, one that greets properly and trickles its
answer to LOGIN (or, logged in, to EXAMINE), a *silent* server that accepts and never greets, and one that
greets and never answers LOGIN. Limits are tight (``timeout=1``, ``deadline=0.4``) so the tests take about a
second; ``sync --once`` must end with one clear transient-error line, after one connection only: the connector
does not reconnect to a server that did not answer in time, and the run's retries do not try it again
(``imap_unanswered``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from crm_store.secrets import generate_key
from sync_service.connectors.imap_config import ImapConfig
from sync_service.connectors.imap_deadline import MIN_RATE, PER_MESSAGE, CommandClock
from sync_service.connectors.imap_unanswered import UNANSWERED, Unanswered
from sync_service.errors import ConfigError
from tests.support.builders import REP

pytestmark = pytest.mark.timeout(60)


class FakeServer:
    """Accepts on a free port; each connection is served by ``mode`` in a thread of its own. After ``lifetime``
    seconds it goes away (connections closed, new ones refused), so that a client without a deadline fails the
    test in seconds instead of hanging it."""

    def __init__(self, mode: str, lifetime: float = 4.0) -> None:
        self.mode = mode
        self.accepted = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()
        self._timer = threading.Timer(lifetime, self.close)
        self._timer.daemon = True
        self._timer.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._sockets.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            if self.mode == "trickle-greeting":
                conn.sendall(b"* OK ")
                self._trickle(conn)
            elif self.mode in ("trickle-login", "silent-login", "trickle-examine"):
                conn.sendall(b"* OK [CAPABILITY IMAP4rev1] ready\r\n")
                reader = conn.makefile("rb")
                while not self._closed.is_set():
                    tag, _, command = reader.readline().partition(b" ")
                    verb = command.split(b" ", 1)[0].strip().upper()
                    if verb == b"CAPABILITY":
                        conn.sendall(b"* CAPABILITY IMAP4rev1\r\n" + tag + b" OK done\r\n")
                    elif self.mode == "trickle-examine" and verb in (b"LOGIN", b"LIST"):
                        listed = b'* LIST (\\HasNoChildren) "/" INBOX\r\n' if verb == b"LIST" else b""
                        conn.sendall(listed + tag + b" OK done\r\n")
                    elif self.mode in ("trickle-login", "trickle-examine"):  # an answer that never ends
                        conn.sendall(b"* OK ")
                        self._trickle(conn)
                    else:  # LOGIN: no answer at all
                        self._closed.wait(30)
            self._closed.wait(30)  # silent: accepted, never a word

    def _trickle(self, conn: socket.socket) -> None:
        while not self._closed.wait(0.05):
            conn.sendall(b"x")

    def close(self) -> None:
        self._closed.set()
        for sock in (self._listener, *self._sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked on it
            sock.close()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[FakeServer]:
    fake = FakeServer(request.param)
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture(autouse=True)
def fresh_memory() -> Iterator[None]:
    """The process-wide memory of unanswered mailboxes must not leak into other tests (ports are reused)."""
    UNANSWERED.clear()
    yield
    UNANSWERED.clear()


@pytest.fixture
def imap_cli(cli, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CRM_SECRET_KEY", generate_key())
    monkeypatch.setenv("BOX_PASSWORD", "pw")
    monkeypatch.setenv("CRM_RETRY_MIN_BACKOFF_MS", "10")  # the run's three retries, without their seconds
    monkeypatch.setenv("CRM_RETRY_MAX_BACKOFF_MS", "40")
    monkeypatch.setattr("sync_service.connectors.imap.BACKOFF", (0.01, 0.01, 0.01, 0.01))  # the reconnects too
    assert cli("init").code == 0
    return cli


def _sync_once(cli, port: int, query: str):  # type: ignore[no-untyped-def]
    source = f"imap://alice@127.0.0.1:{port}/?folders=INBOX&{query}"
    added = cli("mailbox", "add", "box", "--owner", REP, "--source", source, "--secret-env", "BOX_PASSWORD")
    assert added.code == 0, added.err
    started = time.monotonic()
    result = cli("sync", "--once")
    return result, time.monotonic() - started


# -- F6: a trickle ends in the command's deadline ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        ("trickle-greeting", "the server's greeting was not complete after 0.4 s (deadline 0.4 s) while connecting"),
        ("trickle-login", "the server's answer was not complete after 0.4 s (deadline 0.4 s) while logging in"),
        (
            "trickle-examine",  # logged in: the answer to EXAMINE trickles (and so would LOGOUT's, on the way out)
            "the server's answer was not complete after 0.4 s (deadline 0.4 s) while opening folder 'INBOX' "
            "(URL options deadline=, batch=)",
        ),
    ],
    indirect=["server"],
)
def test_a_trickling_server_ends_sync_once_with_one_transient_error_line(
    imap_cli, server: FakeServer, reason: str
) -> None:  # type: ignore[no-untyped-def]
    result, took = _sync_once(imap_cli, server.port, "timeout=1&deadline=0.4")
    assert result.code == 1, result
    [line] = result.err.splitlines()
    assert line.startswith("crm-sync: error: mailbox box did not sync this time (tried again at the next run): ")
    assert f"IMAP alice@127.0.0.1:{server.port}: {reason}" in line, line
    assert "pw" not in line
    assert server.accepted == 1  # no reconnect, and the run's three retries did not connect again
    assert took < 10, took


# -- F12: a silent server costs one timeout per run --------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        ("silent", "the server did not greet within 0.3 s while connecting"),
        ("silent-login", "no answer within 0.3 s while logging in"),
    ],
    indirect=["server"],
)
def test_a_silent_server_costs_one_connection_per_run(imap_cli, server: FakeServer, reason: str) -> None:  # type: ignore[no-untyped-def]
    result, took = _sync_once(imap_cli, server.port, "timeout=0.3")
    assert server.accepted == 1, server.accepted  # was 5 × 4 = 20 (audit 17a F12)
    assert result.code == 1, result
    [line] = result.err.splitlines()
    assert f"IMAP alice@127.0.0.1:{server.port}: {reason}" in line, line
    assert "not tried again for another" in line  # the last of the run's attempts says why it did not connect
    assert took < 3, took


def test_the_memory_holds_a_mailbox_for_a_while_and_forgets_it() -> None:
    now = [100.0]
    memory = Unanswered(hold=60, clock=lambda: now[0])
    assert memory.held("a@h:1") is None
    memory.note("a@h:1", "IMAP a@h:1: the server did not greet within 60 s while connecting")
    now[0] += 12
    assert memory.held("a@h:1") == (
        "IMAP a@h:1: the server did not greet within 60 s while connecting (12 s ago; not tried again for another 48 s)"
    )
    assert memory.held("b@h:1") is None  # another mailbox on the same server pays its own first attempt
    now[0] += 48
    assert memory.held("a@h:1") is None  # held no longer
    memory.note("a@h:1", "again")
    memory.forget("a@h:1")  # a later connection was answered
    assert memory.held("a@h:1") is None


# -- the budget: tight for a trickle, ample for a real FETCH batch -------------------------------------------------


def test_a_fetch_batch_earns_time_per_message_and_per_byte_a_trickle_does_not() -> None:
    clock = CommandClock(deadline=120.0)
    assert clock.left(0.0) is None  # nothing sent: nothing to bound
    clock.start(1000.0)
    assert clock.left(1000.0) == 120.0
    clock.note(24)  # a trickle of a byte every 5 s for two minutes
    assert clock.left(1120.0) == pytest.approx(24 / MIN_RATE)
    clock.messages = 250  # a FETCH batch of 250 messages, 500 MB of mail
    clock.start(2000.0)
    clock.note(500 * 2**20)
    assert clock.budget() == pytest.approx(120 + 250 * PER_MESSAGE + 500 * 2**20 / MIN_RATE)
    assert clock.budget() > 8000  # 500 MB at 64 KB/s: a real server's batch is far inside


def test_the_deadline_comes_from_the_url() -> None:
    assert ImapConfig.from_url("imap://a@h/").command_deadline == 120.0
    assert ImapConfig.from_url("imap://a@h/?timeout=10").command_deadline == 20.0
    assert ImapConfig.from_url("imap://a@h/?timeout=10&deadline=300").command_deadline == 300.0
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ConfigError, match="deadline"):
            ImapConfig.from_url(f"imap://a@h/?deadline={bad}")


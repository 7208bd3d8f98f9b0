"""The IMAP connector and the IDLE watch mask the credentials they sent when a server echoes them (SPEC §6)."""

from __future__ import annotations

import imaplib
import logging
import threading
import time
from collections.abc import Callable

import pytest
from imap_tools.errors import MailboxFolderSelectError, MailboxFolderStatusError

from sync_service.connectors.imap import ImapConnector
from sync_service.connectors.imap_config import ImapConfig
from sync_service.connectors.imap_errors import translated
from sync_service.connectors.imap_idle import FolderWatch
from sync_service.errors import PermanentSourceError, TransientSourceError
from tests.support.leaky import EchoingImapServer
from workers import idle_watch
from workers.idle_watch import MailboxWatch, WatchedMailbox, WatchTiming

SECRETS = [
    ("Sup3rS3cretPassw0rd-XYZZY", "folders=INBOX"),  # LOGIN: echoed verbatim
    ("pa\"ss\\wo'rd-XYZZY", "folders=INBOX"),  # LOGIN: IMAP-quoted, then escaped in a bytes repr
    ("pässwörd-XYZZY", "folders=INBOX"),  # non-ASCII: AUTHENTICATE PLAIN, echoed in base64
    ("ya29.access-token-XYZZY", "folders=INBOX&auth=xoauth2"),  # XOAUTH2: echoed in base64
]
IDS = ["login", "quoted", "plain", "xoauth2"]
QUOTED = "pa\"ss\\wo'rd-XYZZY"
IMAP_QUOTED = '"alice" "pa\\"ss\\\\wo\'rd-XYZZY"'  # as imaplib sends it in a LOGIN


@pytest.mark.parametrize(("secret", "query"), SECRETS, ids=IDS)
def test_a_refused_login_keeps_the_servers_answer_but_not_the_secret(secret: str, query: str) -> None:
    with EchoingImapServer() as server:
        imap = ImapConnector(server.url(query=query), secret)
        with pytest.raises(PermanentSourceError) as refused:
            imap.folders()
        imap.close()
        watch = FolderWatch(server.url(query=query), secret)
        with pytest.raises(PermanentSourceError) as refused_watch:
            watch.open()
        watch.close()
    for error in (refused.value, refused_watch.value):
        assert "login failed" in str(error) and "[AUTHENTICATIONFAILED] bad credentials: " in str(error)
        assert "XYZZY" not in str(error) and "***" in str(error)


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (MailboxFolderSelectError(("NO", [b"Mailbox doesn't exist: Nope"]), "OK"), "Mailbox doesn't exist: Nope"),
        (MailboxFolderStatusError(("NO", []), "OK"), "the server answered NO"),
        (imaplib.IMAP4.error("EXAMINE command error: BAD [b'Error in IMAP command EXAMINE: Invalid arguments.']"),
         "EXAMINE command error: BAD Error in IMAP command EXAMINE: Invalid arguments."),
        (imaplib.IMAP4.error("IDLE refused: ('NO', [b'IDLE is off', b\"it's late\"])"),
         "IDLE refused: ('NO', IDLE is off it's late)"),
        (imaplib.IMAP4.error(f"LOGIN command error: BAD {[b'bad: ' + IMAP_QUOTED.encode()]}"),
         'LOGIN command error: BAD bad: "alice" "***"'),  # decoded, then masked in its IMAP-quoted form
    ],
    ids=["select-no", "status-empty", "examine-bad", "idle-refused", "echoed-secret"],
)
def test_other_refusals_quote_the_servers_own_text(error: Exception, said: str) -> None:
    config = ImapConfig.from_url("imap://alice@127.0.0.1:1/")
    with pytest.raises(TransientSourceError) as refused, translated(config, "opening folder 'Nope'", lambda: [QUOTED]):
        raise error
    assert str(refused.value) == f"IMAP alice@127.0.0.1:1: unexpected answer while opening folder 'Nope': {said}"
    assert "Response status" not in str(refused.value) and "XYZZY" not in str(refused.value)


SECRET = "watch-Secret-XYZZY"


def _watch_until_logged(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fail: Exception) -> str:
    """Run a MailboxWatch whose IMAP side fails with ``fail``; return what it logged."""

    class Connector:
        backoff: tuple[float, ...] = ()

        def __init__(self, url: str, secret: str | None) -> None:
            pass

        def folders(self) -> list[str]:
            if isinstance(fail, PermanentSourceError):
                raise fail
            return ["INBOX"]

        def close(self) -> None:
            pass

    class Folder:
        def __init__(self, url: str, secret: str | None, folder: str) -> None:
            pass

        def open(self) -> bool:
            raise fail

        def close(self) -> None:
            pass

    monkeypatch.setattr(idle_watch, "ImapConnector", Connector)
    monkeypatch.setattr(idle_watch, "FolderWatch", Folder)
    caplog.set_level(logging.DEBUG, logger="workers.watch")
    noop: Callable[[int, str], None] = lambda _id, _value: None  # noqa: E731
    timing = WatchTiming(reidle=1.0, backoff=(0.05,), permanent_wait=0.05)
    watch = MailboxWatch(WatchedMailbox(1, "m", "imap://alice@127.0.0.1:1/", SECRET), noop, noop, timing)
    watch.start()
    deadline = time.monotonic() + 5
    while not any(r.levelno >= logging.WARNING for r in caplog.records) and time.monotonic() < deadline:
        time.sleep(0.01)
    watch.stop()
    watch.join(5)
    assert not [t for t in threading.enumerate() if t.name.startswith("watch m")]
    return caplog.text


@pytest.mark.parametrize(
    ("fail", "said"),
    [
        (PermanentSourceError(f"refused: {SECRET}"), "m: cannot list the folders to watch: refused: ***"),
        (RuntimeError(f"a bug: {SECRET}"), "unexpected error watching 'INBOX' of m: RuntimeError: a bug: ***"),
    ],
    ids=["source-error", "unexpected"],
)
def test_the_idle_watch_logs_no_secret(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fail: Exception, said: str
) -> None:
    logged = _watch_until_logged(monkeypatch, caplog, fail)
    assert said in logged
    assert "XYZZY" not in logged  # nor in a traceback

"""The IMAP connector against a real Dovecot: listing, paging, cursors, deletes, UIDVALIDITY, errors, auth."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import pytest

from sync_service.connectors.base import RawItem
from sync_service.connectors.imap import ImapConnector
from sync_service.connectors.imap_cursor import FolderCursor, decode, from_ranges, members, to_ranges
from sync_service.connectors.imap_idle import FolderWatch
from sync_service.errors import ConfigError, PermanentSourceError, TransientSourceError
from tests.imap.conftest import PASSWORD, TOKEN
from tests.support.builders import message
from tests.support.dovecot import DovecotServer


def mails(prefix: str, count: int) -> list[bytes]:
    return [message(f"{prefix}{i}@test", "wile@acme.example", ["alice@northwind-sales.example"], f"{prefix} {i}")
            for i in range(count)]


@dataclass
class Sync:
    items: list[RawItem] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    pages: int = 0
    resync: bool = False
    cursor: str | None = None


def drain(connector: ImapConnector, cursor: str | None, folder: str = "INBOX", limit: int = 500) -> Sync:
    """List and fetch every page, as the pipeline does, carrying the cursor from page to page."""
    result = Sync(cursor=cursor)
    while True:
        page = connector.list_changes(folder, result.cursor, limit)
        result.items += list(connector.fetch(folder, page.upserts))
        result.deletes += page.deletes
        result.resync |= page.full_resync
        result.pages += 1
        result.cursor = page.next_cursor
        if not page.more:
            return result


def subjects(items: list[RawItem]) -> list[str]:
    return [next(line for line in i.data.decode().splitlines() if line.startswith("Subject:"))[9:] for i in items]


def connector(server: DovecotServer, query: str = "", secret: str = PASSWORD, user: str = "alice") -> ImapConnector:
    imap = ImapConnector(server.url(user, query=query), secret)
    imap.backoff = (0.05, 0.1)
    return imap


def test_initial_sync_pages_without_marking_anything_seen(dovecot: DovecotServer) -> None:
    dovecot.append("alice", mails("m", 7))
    imap = connector(dovecot)
    first = imap.list_changes("INBOX", None, limit=3)
    assert [r.external_id.split(":")[1] for r in first.upserts] == ["1", "2", "3"] and first.more
    state = decode(first.next_cursor)
    assert state is not None and state.high == 3 and state.known == (1, 2, 3)  # covers exactly this page
    rest = drain(imap, first.next_cursor, limit=3)
    assert rest.pages == 2 and len(rest.items) == 4
    everything = list(imap.fetch("INBOX", first.upserts)) + rest.items
    assert sorted(subjects(everything)) == sorted(f"m {i}" for i in range(7))
    assert all(i.ref.kind == "message" and i.ref.version.isdigit() for i in everything)  # version = MODSEQ
    with dovecot.client("alice") as box:
        box.folder.set("INBOX", readonly=True)
        assert box.uids("SEEN") == [] and len(box.uids("UNSEEN")) == 7
    assert drain(imap, rest.cursor).items == []
    imap.close()


def test_default_folders_are_inbox_and_the_special_use_sent_folder(dovecot: DovecotServer) -> None:
    dovecot.append("alice", mails("s", 2), folder="Sent")
    imap = connector(dovecot)
    assert list(imap.folders()) == ["INBOX", "Sent"]
    assert subjects(drain(imap, None, folder="Sent").items) == ["s 0", "s 1"]
    assert list(connector(dovecot, "folders=INBOX,%5CArchive").folders()) == ["INBOX", "Archive"]
    with pytest.raises(PermanentSourceError, match="no IMAP folder 'Nope'"):
        connector(dovecot, "folders=INBOX,Nope").folders()
    with pytest.raises(PermanentSourceError, match="Nope"):
        connector(dovecot).list_changes("Nope", None)


@pytest.mark.parametrize("extensions", ["qresync", "plain"])
def test_incremental_append_flag_change_expunge_and_move(dovecot: DovecotServer, extensions: str) -> None:
    dovecot.append("alice", mails("m", 5))
    imap = connector(dovecot)
    if extensions == "plain":  # a server without CONDSTORE / QRESYNC / ESEARCH: deletes found by UID comparison
        imap.session.connect()
        imap.session.capabilities = frozenset({"IMAP4REV1"})
    start = drain(imap, None)
    uids = [int(i.ref.external_id.split(":")[1]) for i in start.items]
    validity = start.items[0].ref.external_id.split(":")[0]
    with dovecot.client("alice") as box:
        box.folder.set("INBOX")
        box.flag([str(uids[0])], "\\Seen", True)  # a flag change is no change for the CRM
        box.delete([str(uids[1])])
        box.move([str(uids[2])], "Archive")
        box.append(message("new@test", "wile@acme.example", ["alice@northwind-sales.example"], "new"), "INBOX")
    after = drain(imap, start.cursor)
    assert subjects(after.items) == ["new"]
    assert sorted(after.deletes) == sorted(f"{validity}:{u}" for u in uids[1:3])
    assert drain(imap, after.cursor).items == [] and drain(imap, after.cursor).deletes == []
    state = decode(after.cursor)
    assert state is not None and state.known == (uids[0], uids[3], uids[4], uids[4] + 1)
    imap.close()


def test_nothing_changed_costs_no_listing(dovecot: DovecotServer) -> None:
    dovecot.append("alice", mails("m", 3))
    imap = connector(dovecot)
    cursor = drain(imap, None).cursor
    searches: list[int] = []
    real_search = imap.session.search_uids
    imap.session.search_uids = lambda above=0: searches.append(above) or real_search(above)  # type: ignore[method-assign]
    page = imap.list_changes("INBOX", cursor)
    assert page.upserts == () and page.deletes == () and not page.more and searches == []
    imap.close()


def test_uidvalidity_change_relists_everything_with_full_resync(dovecot: DovecotServer) -> None:
    dovecot.append("alice", mails("m", 4))
    imap = connector(dovecot)
    cursor = drain(imap, None).cursor
    dovecot.set_uidvalidity("alice", "INBOX", 4242)
    again = drain(imap, cursor, limit=3)
    assert again.resync and again.pages == 2 and again.deletes == []
    assert sorted(subjects(again.items)) == [f"m {i}" for i in range(4)]
    assert {i.ref.external_id.split(":")[0] for i in again.items} == {"4242"}
    assert drain(imap, again.cursor).items == []
    imap.close()


def test_fetch_survives_a_server_restart(dovecot: DovecotServer) -> None:
    dovecot.append("alice", mails("m", 6))
    imap = connector(dovecot)
    page = imap.list_changes("INBOX", None, limit=6)
    dovecot.restart()  # the connection is gone: fetch reconnects, selects again and resumes
    assert sorted(subjects(list(imap.fetch("INBOX", page.upserts)))) == [f"m {i}" for i in range(6)]
    dovecot.restart()
    assert imap.list_changes("INBOX", page.next_cursor).upserts == ()
    imap.close()


def test_errors_are_clear_and_never_carry_the_secret(dovecot: DovecotServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    dovecot.append("alice", mails("m", 1))
    assert len(drain(connector(dovecot), None).items) == 1
    with pytest.raises(PermanentSourceError, match="login failed") as bad:
        connector(dovecot, secret="wrong-Secret-123").folders()
    assert "wrong-Secret-123" not in str(bad.value) and "alice@127.0.0.1" in str(bad.value)
    dovecot.stop()
    with pytest.raises(TransientSourceError, match="gave up") as down:
        connector(dovecot).folders()
    assert PASSWORD not in str(down.value) and not isinstance(down.value, PermanentSourceError)
    with pytest.raises(ConfigError, match="password in the source URL"):
        ImapConnector(f"imap://alice:{PASSWORD}@127.0.0.1:{dovecot.port}/", None)
    assert "reconnecting" in caplog.text and PASSWORD not in caplog.text and "wrong-Secret-123" not in caplog.text


def test_a_refused_login_quotes_the_servers_own_text(dovecot: DovecotServer) -> None:
    where = f"IMAP alice@127.0.0.1:{dovecot.port}"
    wanted = f"{where}: login failed (check the user and the secret): [AUTHENTICATIONFAILED] Authentication failed."
    with pytest.raises(PermanentSourceError) as bad:
        connector(dovecot, secret="wrong-Secret-123").folders()
    watch = FolderWatch(dovecot.url("alice"), "wrong-Secret-123", "INBOX")
    with pytest.raises(PermanentSourceError) as bad_watch:
        watch.open()
    watch.close()
    for error in (bad.value, bad_watch.value):
        assert str(error) == wanted  # no imap-tools "Response status ... expected" wrapper, no b'...' repr


def test_xoauth2_login(dovecot: DovecotServer) -> None:
    dovecot.append("alice", mails("m", 2))
    assert len(drain(connector(dovecot, "auth=xoauth2", secret=TOKEN), None).items) == 2
    with pytest.raises(PermanentSourceError, match="login failed") as bad:
        connector(dovecot, "auth=xoauth2", secret="expired-token").folders()
    assert "expired-token" not in str(bad.value)


def test_uid_ranges_and_cursor_round_trip() -> None:
    assert to_ranges([5, 1, 2, 3, 9, 10, 2]) == "1:3,5,9:10" and to_ranges([]) == ""
    assert from_ranges("1:3,5,10:9") == [1, 2, 3, 5, 9, 10] and from_ranges("4:*", upper=6) == [4, 5, 6]
    assert members([1, 5, 7, 10**6], "2:6,900000:4294967295") == {5, 10**6}
    sparse = FolderCursor(7, 40_001, 12, tuple(range(1, 40_001, 2)))
    encoded = sparse.encode()
    assert encoded.startswith("imap1.7.40001.12.z") and len(encoded) < 2_000 and decode(encoded) == sparse
    assert decode("imap1.7.3.0.1:5") is None and decode("garbage") is None and decode(None) is None


def test_idle_wakes_up_on_new_mail_and_times_out_quietly(dovecot: DovecotServer) -> None:
    watch = FolderWatch(dovecot.url("alice", query="idle=1"), PASSWORD, "INBOX")
    assert ImapConnector(dovecot.url("alice", query="idle=1"), PASSWORD).idle
    watch.session.examine("INBOX")  # selected before the mail arrives: the IDLE must report it
    assert watch.wait(timeout=0.3) is False
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(watch.wait(timeout=60)))
    waiter.start()
    dovecot.append("alice", mails("n", 1))
    waiter.join(timeout=90)
    assert woke == [True]
    watch.close()

"""MaildirConnector against real Maildirs built with the stdlib ``mailbox`` module."""

from __future__ import annotations

import mailbox
import os
import re
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync_service.connectors.base import ChangePage, Connector
from sync_service.connectors.localpath import url_to_path
from sync_service.connectors.maildir import MaildirConnector, unique_key
from sync_service.connectors.registry import open_connector
from sync_service.connectors.snapshot import decode_state
from sync_service.errors import ConfigError, PermanentSourceError


def _msg(n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alice@example.com"
    msg["To"] = "bob@example.org"
    msg["Subject"] = f"message {n}"
    msg["Message-ID"] = f"<m{n}@example.com>"
    msg.set_content(f"body {n}\n" * (n + 1))
    return msg


def _maildir(root: Path, count: int) -> tuple[mailbox.Maildir, list[str]]:
    md = mailbox.Maildir(root, create=True)
    return md, [md.add(_msg(i)) for i in range(count)]


def _drain(conn: Connector, folder: str = ".", cursor: str | None = None,
           limit: int = 500) -> tuple[list[ChangePage], str | None]:
    pages = []
    while True:
        page = conn.list_changes(folder, cursor, limit)
        pages.append(page)
        cursor = page.next_cursor
        if not page.more:
            return pages, cursor


def _ids(pages: list[ChangePage]) -> list[str]:
    return [r.external_id for p in pages for r in p.upserts]


def _cursor_parts(cursor: str) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
    """(``cur/``'s snapshot — its base with its delta applied —, the rest's snapshot, the rest's meta)."""
    assert cursor.startswith("md3.")
    base, delta, rest = cursor.removeprefix("md3.").split("|")
    cur = decode_state(base)[0]
    for key, version in decode_state(delta)[0].items():
        if version == "-":
            cur.pop(key)
        else:
            cur[key] = version
    return cur, *decode_state(rest)


def _tree(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_initial_listing_ids_versions_and_fetch(tmp_path: Path) -> None:
    md, keys = _maildir(tmp_path / "mail", 3)
    conn = MaildirConnector(f"maildir://{tmp_path / 'mail'}")
    assert isinstance(conn, Connector)
    assert conn.folders() == ["."]
    page = conn.list_changes(".", None)
    assert sorted(_ids([page])) == sorted(keys) and page.deletes == () and not page.more
    ref = page.upserts[0]
    assert ref.kind == "message" and ref.version == str(len(md.get_bytes(ref.external_id)))
    got = {i.ref.external_id: i.data for i in conn.fetch(".", page.upserts)}
    assert got == {k: next((tmp_path / "mail").glob(f"*/{k}*")).read_bytes() for k in keys}
    assert conn.list_changes(".", page.next_cursor).upserts == ()


def test_paging_then_fresh_connector_continues(tmp_path: Path) -> None:
    _, keys = _maildir(tmp_path / "mail", 7)
    url = f"maildir://{tmp_path / 'mail'}"
    first = MaildirConnector(url).list_changes(".", None, limit=3)
    assert len(first.upserts) == 3 and first.more
    pages, cursor = _drain(MaildirConnector(url), cursor=first.next_cursor, limit=3)
    ids = _ids([first, *pages])
    assert sorted(ids) == sorted(keys) and len(ids) == len(set(ids))
    assert MaildirConnector(url).list_changes(".", cursor).upserts == ()


def test_the_pages_of_one_pass_are_those_of_fresh_listings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # One connector keeps its listing between the pages of a pass (the changes found once, the cursor's
    # cur/ and new/ parts grown page by page); a fresh connector per page lists and diffs anew. Both give
    # the same pages and cursors.
    md, _ = _maildir(tmp_path / "mail", 9)
    for n, key in enumerate(md.keys()):
        if n % 2:  # some already read, in cur/
            message = md[key]
            message.set_subdir("cur")
            message.add_flag("S")
            md[key] = message
    url = f"maildir://{tmp_path / 'mail'}"
    scans = []
    scan = MaildirConnector._scan
    monkeypatch.setattr(MaildirConnector, "_scan", lambda self, *a, **k: scans.append(1) or scan(self, *a, **k))
    kept, _ = _drain(MaildirConnector(url), limit=2)
    assert len(scans) == 1  # one scan and one diff for the whole pass
    cursor: str | None = None
    fresh = []
    while True:
        page = MaildirConnector(url).list_changes(".", cursor, 2)
        fresh.append(page)
        cursor = page.next_cursor
        if not page.more:
            break
    def parts(cursor: str) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
        cur, rest, meta = _cursor_parts(cursor)
        return cur, rest, {k: v for k, v in meta.items() if k != "at"}

    assert len(kept) == 5 and [(p.upserts, p.deletes, parts(p.next_cursor), p.more) for p in kept] == [
        (p.upserts, p.deletes, parts(p.next_cursor), p.more) for p in fresh
    ]
    assert [p.next_cursor for p in kept[:-1]] == [p.next_cursor for p in fresh[:-1]]  # the last: a later scan time


def test_new_deleted_and_renamed_messages(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    md, keys = _maildir(root, 3)
    conn = MaildirConnector(f"maildir://{root}")
    _, cursor = _drain(conn)
    # new/ → cur/ move with flags, then a flag change: not changes
    os.rename(root / "new" / keys[0], root / "cur" / f"{keys[0]}:2,S")
    os.rename(root / "cur" / f"{keys[0]}:2,S", root / "cur" / f"{keys[0]}:2,RS")
    os.rename(root / "new" / keys[1], root / "cur" / f"{keys[1]}!2,F")
    page = conn.list_changes(".", cursor)
    assert page.upserts == () and page.deletes == ()
    new_key = md.add(_msg(9))
    md.remove(keys[2])
    page = conn.list_changes(".", cursor)
    assert _ids([page]) == [new_key] and page.deletes == (keys[2],)
    # fetch finds a message that moved after it was listed; a vanished one is skipped
    os.rename(root / "cur" / f"{keys[0]}:2,RS", root / "cur" / f"{keys[0]}:2,S")
    refs = [r for r in conn.list_changes(".", None).upserts if r.external_id in (keys[0], keys[1])]
    os.rename(root / "cur" / f"{keys[0]}:2,S", root / "cur" / f"{keys[0]}:2,")
    os.remove(root / "cur" / f"{keys[1]}!2,F")
    assert [i.ref.external_id for i in conn.fetch(".", refs)] == [keys[0]]


def test_a_relisting_stats_only_the_messages_its_cursor_does_not_know(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "mail"
    md, keys = _maildir(root, 5)
    conn = MaildirConnector(f"maildir://{root}")
    _, cursor = _drain(conn)
    stat_calls: list[str] = []
    real_stat = os.stat

    def counting(path: str, *args: object, **kwargs: object) -> os.stat_result:
        if os.path.dirname(os.path.dirname(os.fspath(path))) == str(root):  # a message file of this Maildir
            stat_calls.append(os.path.basename(path))
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    new_key = md.add(_msg(7))
    os.rename(root / "new" / keys[0], root / "cur" / f"{keys[0]}:2,S")  # known, moved: still not stat'ed
    monkeypatch.setattr(os, "stat", counting)
    page = conn.list_changes(".", cursor)
    assert page.deletes == () and stat_calls == [new_key]
    assert _ids([page]) == [new_key] and page.upserts[0].version == str(len(md.get_bytes(new_key)))
    # The new cursor keeps the known messages' versions: the next listing sees no change at all.
    assert conn.list_changes(".", page.next_cursor).upserts == ()
    # Without a cursor everything is stat'ed (sizes are the versions).
    stat_calls.clear()
    assert len(conn.list_changes(".", None).upserts) == 6 and len(stat_calls) == 6


def test_subfolders_and_mixed_calendar_files(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    md, keys = _maildir(root, 1)
    sent = md.add_folder("Sent")
    sent_key = sent.add(_msg(5))
    md.add_folder("Archive.2023")
    (root / "meeting.ics").write_bytes(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    (root / "people.vcf").write_bytes(b"BEGIN:VCARD\r\nEND:VCARD\r\n")
    (root / "notes.txt").write_text("ignored")
    conn = open_connector(f"maildir://{root}")
    assert isinstance(conn, MaildirConnector)
    assert conn.folders() == [".", "Archive.2023", "Sent"]
    refs = {r.external_id: r for r in conn.list_changes(".", None).upserts}
    assert set(refs) == {keys[0], "ics:meeting.ics", "vcf:people.vcf"}
    st = (root / "meeting.ics").stat()
    assert refs["ics:meeting.ics"].kind == "calendar"
    assert refs["ics:meeting.ics"].version == f"{st.st_mtime_ns}:{st.st_size}"
    assert refs["vcf:people.vcf"].kind == "contacts"
    data = {i.ref.external_id: i.data for i in conn.fetch(".", list(refs.values()))}
    assert data["ics:meeting.ics"].startswith(b"BEGIN:VCALENDAR")
    assert _ids([conn.list_changes("Sent", None)]) == [sent_key]
    assert conn.list_changes("Archive.2023", None).upserts == ()
    for bad in ("Nope", "../mail", ""):
        with pytest.raises(PermanentSourceError):
            conn.list_changes(bad, None)


def test_changed_calendar_file_is_an_upsert(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    _maildir(root, 1)
    ics = root / "cal.ics"
    ics.write_bytes(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    conn = MaildirConnector(f"maildir://{root}")
    _, cursor = _drain(conn)
    ics.write_bytes(b"BEGIN:VCALENDAR\r\nX:1\r\nEND:VCALENDAR\r\n")
    assert _ids([conn.list_changes(".", cursor)]) == ["ics:cal.ics"]


def test_never_modifies_the_maildir(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    _maildir(root, 3)
    before = _tree(root)
    conn = MaildirConnector(f"maildir://{root}")
    page = conn.list_changes(".", None)
    list(conn.fetch(".", page.upserts))
    conn.close()
    assert _tree(root) == before


def test_garbage_cursor_lists_everything(tmp_path: Path) -> None:
    _, keys = _maildir(tmp_path / "mail", 2)
    conn = MaildirConnector(f"maildir://{tmp_path / 'mail'}")
    assert sorted(_ids([conn.list_changes(".", "definitely-not-a-cursor")])) == sorted(keys)


def test_missing_or_wrong_path(tmp_path: Path) -> None:
    with pytest.raises(PermanentSourceError, match="does not exist"):
        MaildirConnector(f"maildir://{tmp_path / 'nope'}")
    (tmp_path / "file").write_text("x")
    with pytest.raises(PermanentSourceError, match="not a directory"):
        MaildirConnector(f"maildir://{tmp_path / 'file'}")
    _maildir(tmp_path / "gone", 1)
    conn = MaildirConnector(f"maildir://{tmp_path / 'gone'}")
    (tmp_path / "gone").rename(tmp_path / "moved")
    with pytest.raises(PermanentSourceError):
        conn.list_changes(".", None)


def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "my mail").mkdir()
    expected = tmp_path / "my mail"
    for url in ("maildir:my%20mail", "maildir://./my%20mail", f"maildir://{tmp_path}/my%20mail",
                f"maildir://localhost{tmp_path}/my%20mail", "maildir:~/my mail", "maildir://~/my%20mail"):
        assert url_to_path(url) == expected, url
    assert url_to_path("maildir:///a/b#c") == Path("/a/b#c")
    with pytest.raises(ConfigError):
        url_to_path("maildir://otherhost/x")
    with pytest.raises(ConfigError):
        url_to_path("maildir:")


def test_unique_key() -> None:
    assert unique_key("1700000000.M1P2.host,S=10,W=12:2,FS") == "1700000000.M1P2.host,S=10,W=12"
    assert unique_key("1700000000.M1P2.host!2,S") == "1700000000.M1P2.host"
    assert unique_key("1700000000.M1P2.host") == "1700000000.M1P2.host"
    assert unique_key("1700000000.M1P2.host:1,x:2,S") == "1700000000.M1P2.host"  # experimental info first


@given(st.lists(st.sampled_from(["1", ".", "M", ":", "!", ",", "1,", "2,", ":2,", "!2,", ":1,", "!1,"]),
                max_size=12).map("".join))
def test_unique_key_matches_the_maildir_info_pattern(name: str) -> None:
    # the fast path (partition on ":2,") against the definition: cut at the first [:!][12],
    assert unique_key(name) == re.split(r"[:!][12],", name, maxsplit=1)[0]


def _age(*directories: Path, seconds: float = 10.0) -> None:
    """Set the directories' modification times ``seconds`` in the past (as if nothing had changed lately)."""
    then = time.time_ns() - int(seconds * 1e9)
    for directory in directories:
        os.utime(directory, ns=(then, then))


def _counting_listdir(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = os.listdir

    def counting(path: str = ".") -> list[str]:
        calls.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "listdir", counting)
    return calls


def test_a_folder_whose_directories_did_not_change_is_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "mail"
    md, _ = _maildir(root, 3)
    sent = md.add_folder("Sent")
    sent.add(_msg(9))
    _age(root, root / "new", root / "cur", root / ".Sent" / "new", root / ".Sent" / "cur")
    conn = MaildirConnector(f"maildir://{root}")
    _, inbox_cursor = _drain(conn, ".", limit=2)  # two pages: the marks go into the last one
    _, sent_cursor = _drain(conn, "Sent")
    calls = _counting_listdir(monkeypatch)
    for folder, cursor in ((".", inbox_cursor), ("Sent", sent_cursor)):
        page = conn.list_changes(folder, cursor)
        assert (page.upserts, page.deletes, page.next_cursor, page.more) == ((), (), cursor, False)
    assert calls == []  # neither folder's directories were read
    # A new message changes the directory: the folder is read and the message listed.
    new_key = md.add(_msg(10))
    page = conn.list_changes(".", inbox_cursor)
    assert _ids([page]) == [new_key] and calls
    # A removed message too.
    calls.clear()
    _age(root / ".Sent" / "new", root / ".Sent" / "cur")  # unchanged, but its times are not what the cursor saw
    page = conn.list_changes("Sent", sent_cursor)
    assert page.upserts == () and calls  # read once to be sure, and its new cursor records the new times
    for key in list(sent.keys()):
        sent.remove(key)
    assert len(conn.list_changes("Sent", page.next_cursor).deletes) == 1


def test_a_folder_changed_just_before_its_scan_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Directory times within SETTLED_NS of the scan are not trusted: a file system with a coarse clock could
    give a message that arrived just after the scan the same directory time."""
    root = tmp_path / "mail"
    _maildir(root, 2)  # written just now
    conn = MaildirConnector(f"maildir://{root}")
    _, cursor = _drain(conn)
    calls = _counting_listdir(monkeypatch)
    assert conn.list_changes(".", cursor).upserts == () and calls


def test_the_root_with_calendar_files_is_always_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A calendar file next to the mail can be rewritten in place, which no directory time shows."""
    root = tmp_path / "mail"
    _maildir(root, 1)
    (root / "team.ics").write_bytes(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    _age(root, root / "new", root / "cur", root / "team.ics")
    conn = MaildirConnector(f"maildir://{root}")
    _, cursor = _drain(conn)
    before = (root / "new").stat().st_mtime_ns, (root / "cur").stat().st_mtime_ns, root.stat().st_mtime_ns
    (root / "team.ics").write_bytes(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n")
    after = (root / "new").stat().st_mtime_ns, (root / "cur").stat().st_mtime_ns, root.stat().st_mtime_ns
    assert after == before  # rewritten in place: no directory shows it
    page = conn.list_changes(".", cursor)
    assert [r.external_id for r in page.upserts] == ["ics:team.ics"]


def _in_cur(md: mailbox.Maildir, n: int) -> str:
    message = mailbox.MaildirMessage(_msg(n))
    message.set_subdir("cur")
    message.set_flags("S")
    return md.add(message)


def _settled_inbox(root: Path) -> tuple[mailbox.Maildir, list[str], MaildirConnector, str]:
    """A Maildir with three read messages in cur/ and one new one, listed once, its directories old."""
    md = mailbox.Maildir(root, create=True)
    keys = [_in_cur(md, i) for i in range(3)] + [md.add(_msg(3))]
    _age(root, root / "new", root / "cur")
    conn = MaildirConnector(f"maildir://{root}")
    pages, cursor = _drain(conn)
    assert sorted(_ids(pages)) == sorted(keys) and cursor is not None and cursor.startswith("md3.")
    return md, keys, conn, cursor


def test_new_mail_beside_an_unchanged_cur_reads_only_new(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cur/'s part of the cursor is carried over unread while cur/ keeps the settled time of its listing."""
    root = tmp_path / "mail"
    md, _keys, conn, cursor = _settled_inbox(root)
    calls = _counting_listdir(monkeypatch)
    arrived = md.add(_msg(4))
    page = conn.list_changes(".", cursor)
    assert (_ids([page]), page.deletes) == ([arrived], ())
    assert str(root / "new") in calls and str(root / "cur") not in calls
    base, delta, _rest = cursor[4:].split("|")
    assert page.next_cursor.startswith(f"md3.{base}|{delta}|")  # cur/'s part as it was
    # Nothing is lost from the cursor: once cur/ changes, a full listing finds no change but the new one.
    calls.clear()
    arrived_in_cur = _in_cur(md, 5)
    again = MaildirConnector(f"maildir://{root}").list_changes(".", page.next_cursor)
    assert (_ids([again]), again.deletes) == ([arrived_in_cur], ()) and str(root / "cur") in calls


def test_a_message_moved_from_new_to_cur_is_neither_new_nor_gone(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    md, keys, conn, cursor = _settled_inbox(root)
    message = md.get_message(keys[3])
    message.set_subdir("cur")
    message.add_flag("S")
    md[keys[3]] = message  # what a mail client does when the message is read: new/ → cur/
    page = conn.list_changes(".", cursor)
    assert (page.upserts, page.deletes) == ((), ())
    # and the next listing, with cur/'s part carried over, still has it
    _age(root / "new", root / "cur")
    page = conn.list_changes(".", page.next_cursor)
    md.add(_msg(7))
    later = conn.list_changes(".", page.next_cursor)
    assert later.deletes == () and len(later.upserts) == 1


def test_a_message_removed_from_cur_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    md, keys, conn, cursor = _settled_inbox(root)
    md.remove(keys[0])
    page = conn.list_changes(".", cursor)
    assert (page.upserts, page.deletes) == ((), (keys[0],))


def test_cursors_of_the_one_part_form_and_broken_split_cursors(tmp_path: Path) -> None:
    from sync_service.connectors.snapshot import encode_cursor

    root = tmp_path / "mail"
    _md, keys, conn, cursor = _settled_inbox(root)
    cur, rest, meta = _cursor_parts(cursor)
    old = encode_cursor({**cur, **rest})  # as a listing before the split wrote it
    page = conn.list_changes(".", old)
    assert (page.upserts, page.deletes) == ((), ()) and page.next_cursor.startswith("md3.")
    two_parts = f"md2.{encode_cursor(cur)}|{encode_cursor(rest, meta)}"  # as a listing before the delta wrote it
    page = conn.list_changes(".", two_parts)
    assert (page.upserts, page.deletes, page.next_cursor) == ((), (), two_parts)  # nothing changed: kept as it is
    (root / "cur" / "junk").write_bytes(b"Subject: x\n\nbody\n")  # cur/ changed: the md2 form is read, md3 written
    page = conn.list_changes(".", two_parts)
    assert (_ids([page]), page.deletes) == (["junk"], ())
    assert _cursor_parts(page.next_cursor)[0] == {**cur, "junk": "17"}
    for broken in ("md2." + encode_cursor(cur), "md3." + encode_cursor(cur) + "|"):  # separators missing
        assert sorted(_ids([conn.list_changes(".", broken)])) == sorted([*keys, "junk"])  # no cursor: everything


def test_cur_changed_just_before_its_listing_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As for a whole folder: a cur/ time within SETTLED_NS of the listing is not trusted."""
    root = tmp_path / "mail"
    md = mailbox.Maildir(root, create=True)
    _in_cur(md, 0)  # cur/ written just now
    _age(root, root / "new")
    conn = MaildirConnector(f"maildir://{root}")
    _, cursor = _drain(conn)
    calls = _counting_listdir(monkeypatch)
    arrived = md.add(_msg(1))
    page = conn.list_changes(".", cursor)
    assert _ids([page]) == [arrived] and str(root / "cur") in calls


def _keys_in(directory: Path) -> set[str]:
    return {unique_key(name) for name in os.listdir(directory)}


def test_a_relisting_of_a_changed_cur_keeps_its_base_and_writes_a_delta(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cur/ changed (mail read, delivered there or removed): the base of cur/'s part is carried over as written
    and only the delta is new, until the delta outgrows its share of the base and the two are folded."""
    from sync_service.connectors import maildir

    monkeypatch.setattr(maildir, "FOLD_MIN", 2)  # a delta of more than max(2, len(base) // 8) is folded
    root = tmp_path / "mail"
    md = mailbox.Maildir(root, create=True)
    keys = [_in_cur(md, i) for i in range(4)]
    _, cursor = _drain(MaildirConnector(f"maildir://{root}"))
    assert cursor is not None
    base = cursor[4:].split("|")[0]
    assert decode_state(base)[0].keys() == set(keys)  # the first listing folded its delta of 4
    added = _in_cur(md, 4)
    md.remove(keys[0])
    page = MaildirConnector(f"maildir://{root}").list_changes(".", cursor)
    assert (_ids([page]), page.deletes) == ([added], (keys[0],))
    base_after, delta, _rest = page.next_cursor[4:].split("|")
    assert base_after == base  # carried over, not encoded again
    assert decode_state(delta)[0] == {added: str(len(md.get_bytes(added))), keys[0]: "-"}
    assert _cursor_parts(page.next_cursor)[0].keys() == _keys_in(root / "cur") == {*keys[1:], added}
    more = [_in_cur(md, n) for n in (5, 6)]  # a delta of 4 now: folded into a new base
    page = MaildirConnector(f"maildir://{root}").list_changes(".", page.next_cursor)
    assert sorted(_ids([page])) == sorted(more)
    base_after, delta, _rest = page.next_cursor[4:].split("|")
    assert delta == "" and decode_state(base_after)[0].keys() == _keys_in(root / "cur")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_changes_are_listed_once_and_the_cursor_stays_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Deliveries to new/ and cur/, reads (new/ → cur/) and removals, listed in pages of several sizes, some
    with the directories settled (cur/'s part carried over): every message is listed once, every removal is
    reported once, and the cursor's two parts are exactly what cur/ and the rest hold."""
    import random

    from sync_service.connectors import maildir

    monkeypatch.setattr(maildir, "FOLD_MIN", 3)
    rng = random.Random(seed)
    root = tmp_path / "mail"
    md = mailbox.Maildir(root, create=True)
    url = f"maildir://{root}"
    listed: dict[str, str] = {}
    cursor: str | None = None
    made = 0
    for _step in range(30):
        for _ in range(rng.randint(0, 4)):
            unread = sorted(_keys_in(root / "new"))
            action = rng.choice(["new", "cur", "read", "remove"])
            if action in ("new", "cur"):
                md.add(_msg(made)) if action == "new" else _in_cur(md, made)
                made += 1
            elif action == "read" and unread:
                message = md.get_message(unread[0])
                message.set_subdir("cur")
                message.add_flag("S")
                md[unread[0]] = message
            elif action == "remove" and len(md):
                md.remove(rng.choice(sorted(md.keys())))
        if rng.random() < 0.3:
            _age(root, root / "new", root / "cur")
        pages, cursor = _drain(MaildirConnector(url), cursor=cursor, limit=rng.choice([1, 2, 500]))
        assert cursor is not None
        present = {key: str(len(md.get_bytes(key))) for key in md.iterkeys()}
        upserts, deletes = _ids(pages), [key for p in pages for key in p.deletes]
        assert sorted(upserts) == sorted(present.keys() - listed.keys())
        assert sorted(deletes) == sorted(listed.keys() - present.keys())
        cur, rest, _meta = _cursor_parts(cursor)
        assert {**cur, **rest} == present and cur.keys() == _keys_in(root / "cur")
        listed = present


@pytest.mark.parametrize("same_size", [True, False])
def test_a_message_gone_from_the_base_and_back_under_its_key_is_in_the_cursor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, same_size: bool
) -> None:
    """The delta's tombstone for a message of the base is replaced when a file with its key comes back (a
    restored backup, say), on the first page of a pass or a later one, and with the base's size or another."""
    from sync_service.connectors import maildir

    monkeypatch.setattr(maildir, "FOLD_MIN", 0)  # the first listing's delta is folded: a base of 4 …
    root = tmp_path / "mail"
    md = mailbox.Maildir(root, create=True)
    keys = [_in_cur(md, i) for i in range(4)]
    data = {key: md.get_bytes(key) for key in keys}
    _, cursor = _drain(MaildirConnector(f"maildir://{root}"))
    assert cursor is not None and decode_state(cursor[4:].split("|")[0])[0].keys() == set(keys)
    monkeypatch.setattr(maildir, "FOLD_MIN", 20)  # … then no more folding: the base stays, the delta grows
    names = {unique_key(name): name for name in os.listdir(root / "cur")}
    for key in keys[:2]:
        md.remove(key)
    page = MaildirConnector(f"maildir://{root}").list_changes(".", cursor)
    assert sorted(page.deletes) == sorted(keys[:2]) and _cursor_parts(page.next_cursor)[0].keys() == set(keys[2:])
    assert decode_state(page.next_cursor[4:].split("|")[1])[0] == dict.fromkeys(keys[:2], "-")  # tombstones
    for key in keys[:2]:  # back, under the same file names
        (root / "cur" / names[key]).write_bytes(data[key] if same_size else data[key] + b"more\n")
    pages, cursor = _drain(MaildirConnector(f"maildir://{root}"), cursor=page.next_cursor, limit=1)
    assert len(pages) == 2 and sorted(_ids(pages)) == sorted(keys[:2])
    cur = _cursor_parts(cursor)[0]
    assert cur == {key: str((root / "cur" / names[key]).stat().st_size) for key in keys}
    assert _ids(_drain(MaildirConnector(f"maildir://{root}"), cursor=cursor)[0]) == []

"""MboxConnector: framing, content ids, paging, and the append-only fast path."""

from __future__ import annotations

import hashlib
import mailbox
import os
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path

import pytest

from sync_service.connectors.base import ChangePage
from sync_service.connectors.mbox import MboxConnector
from sync_service.connectors.registry import open_connector
from sync_service.connectors.snapshot import decode_cursor, decode_state
from sync_service.errors import PermanentSourceError


def _msg(n: int, body_lines: int = 1) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alice@example.com"
    msg["Subject"] = f"message {n}"
    msg.set_content(f"line of message {n} padding padding padding\n" * body_lines)
    return msg


def _mbox(path: Path, count: int, body_lines: int = 1) -> Path:
    box = mailbox.mbox(path)
    for i in range(count):
        box.add(_msg(i, body_lines))
    box.flush()
    box.close()
    return path


def _raw(*bodies: bytes) -> bytes:
    return b"".join(b"From sender@example.com Mon Jan  1 00:00:00 2024\n" + b + b"\n" for b in bodies)


def _drain(conn: MboxConnector, cursor: str | None = None, limit: int = 500) -> tuple[list[ChangePage], str]:
    pages = []
    while True:
        page = conn.list_changes(".", cursor, limit)
        pages.append(page)
        cursor = page.next_cursor
        if not page.more:
            return pages, cursor


def _ids(pages: list[ChangePage]) -> list[str]:
    return [r.external_id for p in pages for r in p.upserts]


def _subjects(conn: MboxConnector, pages: list[ChangePage]) -> list[str]:
    refs = [r for p in pages for r in p.upserts]
    return [str(message_from_bytes(i.data)["Subject"]) for i in conn.fetch(".", refs)]


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as fh:
        fh.write(data)


def test_listing_ids_and_fetch(tmp_path: Path) -> None:
    path = _mbox(tmp_path / "in.mbox", 3)
    conn = open_connector(f"mbox://{path}")
    assert isinstance(conn, MboxConnector) and conn.folders() == ["."]
    page = conn.list_changes(".", None)
    assert len(page.upserts) == 3 and not page.more
    items = list(conn.fetch(".", page.upserts))
    assert [str(message_from_bytes(i.data)["Subject"]) for i in items] == [f"message {i}" for i in range(3)]
    for item in items:
        assert item.ref.external_id == hashlib.sha256(item.data).hexdigest()[:24] + "#0"
        assert item.ref.kind == "message" and item.ref.version == ""
    assert conn.list_changes(".", page.next_cursor).upserts == ()


def test_identical_copies_get_numbered_ids(tmp_path: Path) -> None:
    path = tmp_path / "dup.mbox"
    path.write_bytes(_raw(b"Subject: same\n\nx\n", b"Subject: same\n\nx\n", b"Subject: other\n\ny\n"))
    conn = MboxConnector(f"mbox://{path}")
    ids = _ids([conn.list_changes(".", None)])
    assert ids[0].endswith("#0") and ids[1] == ids[0][:-1] + "1" and ids[2].endswith("#0")
    fresh = MboxConnector(f"mbox://{path}")  # no cached scan: fetch streams the file
    refs = list(conn.list_changes(".", None).upserts)
    assert [i.ref.external_id for i in fresh.fetch(".", refs[::-1])] == ids


def test_paging_then_fresh_connector_continues(tmp_path: Path) -> None:
    path = _mbox(tmp_path / "in.mbox", 7)
    first = MboxConnector(f"mbox://{path}").list_changes(".", None, limit=3)
    assert first.more and len(first.upserts) == 3
    assert decode_state(first.next_cursor)[1] == {}  # a partial cursor never claims the file is covered
    conn = MboxConnector(f"mbox://{path}")
    pages, cursor = _drain(conn, first.next_cursor, limit=3)
    ids = _ids([first, *pages])
    assert len(ids) == len(set(ids)) == 7
    assert _subjects(conn, [first, *pages]) == [f"message {i}" for i in range(7)]  # file order
    assert MboxConnector(f"mbox://{path}").list_changes(".", cursor).upserts == ()


def test_unchanged_size_and_mtime_does_not_read_the_file(tmp_path: Path) -> None:
    path = _mbox(tmp_path / "in.mbox", 2)
    _, cursor = _drain(MboxConnector(f"mbox://{path}"))
    st = path.stat()
    path.write_bytes(b"X" * st.st_size)  # would be "not an mbox" if read
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    page = MboxConnector(f"mbox://{path}").list_changes(".", cursor)
    assert page.upserts == () and page.deletes == () and page.next_cursor == cursor


def test_append_reads_only_the_tail(tmp_path: Path) -> None:
    path = _mbox(tmp_path / "in.mbox", 40, body_lines=60)  # ~100 KiB, beyond the 64 KiB head
    _, cursor = _drain(MboxConnector(f"mbox://{path}"))
    data = bytearray(path.read_bytes())
    spot = data.index(b"message 35")  # after the hashed head: damage it without changing the size
    assert spot > 64 * 1024
    data[spot:spot + 10] = b"DAMAGED!!!"
    path.write_bytes(bytes(data))
    _append(path, _raw(b"Subject: appended\n\nnew\n"))
    conn = MboxConnector(f"mbox://{path}")
    pages, cursor = _drain(conn, cursor)
    assert [p.deletes for p in pages] == [()]  # the damaged old message was not re-read
    assert _subjects(conn, pages) == ["appended"]
    assert MboxConnector(f"mbox://{path}").list_changes(".", cursor).upserts == ()
    # a full listing does see the damage: proof that the tail path skipped it
    full = set(_ids(_drain(MboxConnector(f"mbox://{path}"))[0]))
    assert len(set(decode_cursor(cursor)) - full) == 1


def test_rewrite_that_regrows_past_the_old_end_rescans(tmp_path: Path) -> None:
    path = tmp_path / "in.mbox"
    big = b"Subject: big\n\n" + b"x" * 80 + b"\n" * 1000  # the head hash covers only this one
    path.write_bytes(_raw(big + b"y" * 70_000 + b"\n", b"Subject: two\n\nb\n", b"Subject: old\n\nc\n"))
    _, cursor = _drain(MboxConnector(f"mbox://{path}"))
    # same length, the old end still falls on a message boundary, and the head is unchanged
    path.write_bytes(path.read_bytes().replace(b"Subject: old", b"Subject: new") + _raw(b"Subject: add\n\nd\n"))
    conn = MboxConnector(f"mbox://{path}")
    pages, _ = _drain(conn, cursor)
    assert len(pages[0].deletes) == 1 and _subjects(conn, pages) == ["new", "add"]


def test_growth_that_is_not_an_append_rescans(tmp_path: Path) -> None:
    path = tmp_path / "in.mbox"
    path.write_bytes(_raw(b"Subject: one\n\na\n", b"Subject: two\n\nb\n"))
    _, cursor = _drain(MboxConnector(f"mbox://{path}"))
    _append(path, b"more body of two, no From line\n")  # the last message grew
    conn = MboxConnector(f"mbox://{path}")
    pages, _ = _drain(conn, cursor)
    assert len(pages[0].deletes) == 1 and _subjects(conn, pages) == ["two"]


def test_rewrite_rescans_with_deletes(tmp_path: Path) -> None:
    path = _mbox(tmp_path / "in.mbox", 4)
    conn = MboxConnector(f"mbox://{path}")
    pages, cursor = _drain(conn)
    ids = _ids(pages)
    box = mailbox.mbox(path)
    box.remove(box.keys()[1])
    box.add(_msg(9))
    box.flush()
    box.close()
    pages, _ = _drain(MboxConnector(f"mbox://{path}"), cursor)
    assert pages[0].deletes == (ids[1],) and len(_ids(pages)) == 1


def test_from_quoting_and_framing(tmp_path: Path) -> None:
    path = tmp_path / "q.mbox"
    body = b"Subject: q\n\nhello\n>From the start\n>>From quoted twice\nnot a From line\nFrom unquoted, no blank\n"
    path.write_bytes(_raw(body, b"Subject: second\n\nbye\n"))
    conn = MboxConnector(f"mbox://{path}")
    page = conn.list_changes(".", None)
    assert len(page.upserts) == 2
    first = next(conn.fetch(".", page.upserts[:1])).data
    assert first == body.replace(b">From the", b"From the").replace(b">>From", b">From")


def test_stdlib_written_mbox_unquotes_from_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.mbox"
    msg = _msg(1)
    msg.set_content("hi\nFrom the desk of Alice\n")
    box = mailbox.mbox(path)
    box.add(msg)
    box.add(_msg(2))
    box.flush()
    box.close()
    conn = MboxConnector(f"mbox://{path}")
    page = conn.list_changes(".", None)
    assert len(page.upserts) == 2
    assert b"\nFrom the desk of Alice\n" in next(conn.fetch(".", page.upserts[:1])).data


def test_crlf_mbox(tmp_path: Path) -> None:
    path = tmp_path / "crlf.mbox"
    path.write_bytes(b"From a@b Mon\r\nSubject: one\r\n\r\nx\r\n\r\nFrom a@b Tue\r\nSubject: two\r\n\r\ny\r\n\r\n")
    conn = MboxConnector(f"mbox://{path}")
    pages, cursor = _drain(conn)
    assert _subjects(conn, pages) == ["one", "two"]
    _append(path, b"From a@b Wed\r\nSubject: three\r\n\r\nz\r\n\r\n")
    pages, _ = _drain(conn, cursor)
    assert _subjects(conn, pages) == ["three"] and pages[0].deletes == ()


def test_garbage_cursor_lists_everything(tmp_path: Path) -> None:
    path = _mbox(tmp_path / "in.mbox", 2)
    assert len(MboxConnector(f"mbox://{path}").list_changes(".", "fs1.garbage").upserts) == 2


def test_missing_wrong_or_invalid_source(tmp_path: Path) -> None:
    with pytest.raises(PermanentSourceError, match="does not exist"):
        MboxConnector(f"mbox://{tmp_path / 'nope.mbox'}")
    with pytest.raises(PermanentSourceError, match="not a regular file"):
        MboxConnector(f"mbox://{tmp_path}")
    bad = tmp_path / "bad.mbox"
    bad.write_text("Subject: not an mbox\n\nhi\n")
    with pytest.raises(PermanentSourceError, match="not an mbox"):
        MboxConnector(f"mbox://{bad}").list_changes(".", None)
    with pytest.raises(PermanentSourceError):
        MboxConnector(f"mbox://{bad}").list_changes("INBOX", None)
    empty = tmp_path / "empty.mbox"
    empty.write_bytes(b"")
    assert MboxConnector(f"mbox://{empty}").list_changes(".", None).upserts == ()


def test_fetch_skips_vanished_messages(tmp_path: Path) -> None:
    path = _mbox(tmp_path / "in.mbox", 3)
    conn = MboxConnector(f"mbox://{path}")
    refs = conn.list_changes(".", None).upserts
    path.write_bytes(_raw(b"Subject: other\n\nz\n"))
    assert list(conn.fetch(".", refs)) == []

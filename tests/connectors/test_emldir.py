"""EmlDirConnector over a directory tree of .eml (plus .ics / .vcf) files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sync_service.connectors.base import ChangePage, ItemRef
from sync_service.connectors.emldir import EmlDirConnector
from sync_service.connectors.registry import open_connector
from sync_service.errors import PermanentSourceError

T0 = 1_700_000_000 * 10**9


def _write(root: Path, rel: str, data: bytes, age: int) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(T0 + age, T0 + age))
    return path


def _tree(root: Path) -> None:
    _write(root, "b.eml", b"Subject: b\n\nb\n", 2)
    _write(root, "sub/a.eml", b"Subject: a\n\na\n", 1)
    _write(root, "sub/deeper/c.EML", b"Subject: c\n\nc\n", 3)
    _write(root, "cal/meeting.ics", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", 4)
    _write(root, "people.vcf", b"BEGIN:VCARD\r\nEND:VCARD\r\n", 5)
    _write(root, ".hidden/x.eml", b"Subject: x\n\nx\n", 6)
    _write(root, ".y.eml", b"Subject: y\n\ny\n", 6)
    _write(root, "notes.txt", b"ignored", 7)


def _drain(conn: EmlDirConnector, cursor: str | None = None,
           limit: int = 500) -> tuple[list[ChangePage], str | None]:
    pages = []
    while True:
        page = conn.list_changes(".", cursor, limit)
        pages.append(page)
        cursor = page.next_cursor
        if not page.more:
            return pages, cursor


def _ids(pages: list[ChangePage]) -> list[str]:
    return [r.external_id for p in pages for r in p.upserts]


def test_listing_oldest_first_with_kinds_and_versions(tmp_path: Path) -> None:
    _tree(tmp_path)
    conn = open_connector(f"eml://{tmp_path}")
    assert isinstance(conn, EmlDirConnector) and conn.folders() == ["."]
    page = conn.list_changes(".", None)
    assert _ids([page]) == ["sub/a.eml", "b.eml", "sub/deeper/c.EML", "cal/meeting.ics", "people.vcf"]
    kinds = {r.external_id: r.kind for r in page.upserts}
    assert kinds["b.eml"] == "message" and kinds["cal/meeting.ics"] == "calendar"
    assert kinds["people.vcf"] == "contacts"
    assert page.upserts[0].version == f"{T0 + 1}:{(tmp_path / 'sub/a.eml').stat().st_size}"
    data = {i.ref.external_id: i.data for i in conn.fetch(".", page.upserts)}
    assert data["sub/deeper/c.EML"] == b"Subject: c\n\nc\n"


def test_paging_then_fresh_connector_continues(tmp_path: Path) -> None:
    _tree(tmp_path)
    first = EmlDirConnector(f"eml://{tmp_path}").list_changes(".", None, limit=2)
    assert _ids([first]) == ["sub/a.eml", "b.eml"] and first.more
    pages, cursor = _drain(EmlDirConnector(f"eml://{tmp_path}"), first.next_cursor, limit=2)
    assert _ids(pages) == ["sub/deeper/c.EML", "cal/meeting.ics", "people.vcf"]
    assert EmlDirConnector(f"eml://{tmp_path}").list_changes(".", cursor).upserts == ()


def test_new_changed_deleted_and_renamed(tmp_path: Path) -> None:
    _tree(tmp_path)
    conn = EmlDirConnector(f"eml://{tmp_path}")
    _, cursor = _drain(conn)
    _write(tmp_path, "new/d.eml", b"Subject: d\n\nd\n", 10)
    _write(tmp_path, "b.eml", b"Subject: b\n\nb, edited\n", 11)
    (tmp_path / "sub/a.eml").unlink()
    (tmp_path / "people.vcf").rename(tmp_path / "folks.vcf")
    page = conn.list_changes(".", cursor)
    assert _ids([page]) == ["folks.vcf", "new/d.eml", "b.eml"]  # the renamed file kept its old mtime
    assert page.deletes == ("people.vcf", "sub/a.eml")


def test_fetch_without_listing_and_vanished_or_unsafe_ids(tmp_path: Path) -> None:
    _tree(tmp_path)
    (tmp_path.parent / "secret.eml").write_bytes(b"secret")
    conn = EmlDirConnector(f"eml://{tmp_path}")
    refs = [ItemRef(i, "message") for i in ("b.eml", "sub/a.eml", "gone.eml", "../secret.eml", "/etc/passwd")]
    (tmp_path / "sub/a.eml").unlink()
    assert [i.ref.external_id for i in conn.fetch(".", refs)] == ["b.eml"]


def test_garbage_cursor_lists_everything(tmp_path: Path) -> None:
    _tree(tmp_path)
    assert len(EmlDirConnector(f"eml://{tmp_path}").list_changes(".", "xx").upserts) == 5


def test_missing_or_wrong_path_and_folder(tmp_path: Path) -> None:
    with pytest.raises(PermanentSourceError, match="does not exist"):
        EmlDirConnector(f"eml://{tmp_path / 'nope'}")
    (tmp_path / "f.eml").write_bytes(b"x")
    with pytest.raises(PermanentSourceError, match="not a directory"):
        EmlDirConnector(f"eml://{tmp_path / 'f.eml'}")
    (tmp_path / "d").mkdir()
    conn = EmlDirConnector(f"eml://{tmp_path / 'd'}")
    with pytest.raises(PermanentSourceError):
        conn.list_changes("INBOX", None)
    (tmp_path / "d").rmdir()
    with pytest.raises(PermanentSourceError):
        conn.list_changes(".", None)

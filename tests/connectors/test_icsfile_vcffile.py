"""IcsFileConnector / VcfFileConnector: one file, or a flat directory of them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sync_service.connectors.base import ItemRef
from sync_service.connectors.icsfile import IcsFileConnector
from sync_service.connectors.registry import open_connector
from sync_service.connectors.vcffile import VcfFileConnector
from sync_service.errors import PermanentSourceError

ICS = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"
VCF = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ann\r\nEND:VCARD\r\n"


def _touch(path: Path, data: bytes, ns: int) -> Path:
    path.write_bytes(data)
    os.utime(path, ns=(ns, ns))
    return path


def test_single_ics_file_lifecycle(tmp_path: Path) -> None:
    path = _touch(tmp_path / "team.ics", ICS, 10**18)
    conn = open_connector(f"ics://{path}")
    assert isinstance(conn, IcsFileConnector) and conn.folders() == ["."]
    page = conn.list_changes(".", None)
    (ref,) = page.upserts
    assert (ref.external_id, ref.kind, ref.version) == ("team.ics", "calendar", f"{10**18}:{len(ICS)}")
    assert [i.data for i in conn.fetch(".", [ref])] == [ICS]
    assert conn.list_changes(".", page.next_cursor).upserts == ()
    _touch(path, ICS + b"\r\n", 10**18 + 1)
    changed = conn.list_changes(".", page.next_cursor)
    assert [r.version for r in changed.upserts] == [f"{10**18 + 1}:{len(ICS) + 2}"]
    # a fresh connector fetches by id; other ids are not this file
    fresh = IcsFileConnector(f"ics://{path}")
    assert [i.ref.external_id for i in fresh.fetch(".", [ref, ItemRef("other.ics", "calendar")])] == ["team.ics"]


def test_directory_of_ics_files_with_paging(tmp_path: Path) -> None:
    for i, name in enumerate(["b.ics", "a.ICS", "c.ics"]):
        _touch(tmp_path / name, ICS, 10**18 + i)
    (tmp_path / "readme.txt").write_text("ignored")
    (tmp_path / "sub").mkdir()
    _touch(tmp_path / "sub" / "nested.ics", ICS, 1)
    conn = IcsFileConnector(f"ics://{tmp_path}")
    first = conn.list_changes(".", None, limit=2)
    assert [r.external_id for r in first.upserts] == ["b.ics", "a.ICS"] and first.more
    fresh = IcsFileConnector(f"ics://{tmp_path}")
    rest = fresh.list_changes(".", first.next_cursor, limit=2)
    assert [r.external_id for r in rest.upserts] == ["c.ics"] and not rest.more
    (tmp_path / "b.ics").unlink()
    gone = fresh.list_changes(".", rest.next_cursor)
    assert gone.deletes == ("b.ics",) and gone.upserts == ()
    refs = [ItemRef(n, "calendar") for n in ("a.ICS", "b.ics", "../x.ics", "sub/nested.ics")]
    assert [i.ref.external_id for i in fresh.fetch(".", refs)] == ["a.ICS"]


def test_vcf_file_and_directory(tmp_path: Path) -> None:
    path = _touch(tmp_path / "contacts.vcf", VCF, 10**18)
    conn = open_connector(f"vcf://{path}")
    assert isinstance(conn, VcfFileConnector)
    (ref,) = conn.list_changes(".", None).upserts
    assert (ref.external_id, ref.kind) == ("contacts.vcf", "contacts")
    assert [i.data for i in conn.fetch(".", [ref])] == [VCF]
    _touch(tmp_path / "more.vcf", VCF, 10**18 + 5)
    _touch(tmp_path / "cal.ics", ICS, 10**18 + 6)
    refs = VcfFileConnector(f"vcf://{tmp_path}").list_changes(".", None).upserts
    assert [(r.external_id, r.kind) for r in refs] == [("contacts.vcf", "contacts"), ("more.vcf", "contacts")]


def test_garbage_cursor_and_errors(tmp_path: Path) -> None:
    path = _touch(tmp_path / "team.ics", ICS, 10**18)
    assert len(IcsFileConnector(f"ics://{path}").list_changes(".", "not-a-cursor").upserts) == 1
    with pytest.raises(PermanentSourceError, match="does not exist"):
        IcsFileConnector(f"ics://{tmp_path / 'nope.ics'}")
    with pytest.raises(PermanentSourceError, match="does not exist"):
        VcfFileConnector(f"vcf://{tmp_path / 'nope.vcf'}")
    conn = IcsFileConnector(f"ics://{path}")
    with pytest.raises(PermanentSourceError):
        conn.list_changes("Calendar", None)
    path.unlink()
    with pytest.raises(PermanentSourceError):
        conn.list_changes(".", None)

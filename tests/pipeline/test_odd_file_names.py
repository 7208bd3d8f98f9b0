"""File names that are not UTF-8 (possible on POSIX, never made by a delivery agent) are synced, not fatal."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select

from crm_store.models import RawItem
from sync_service.connectors.emldir import EmlDirConnector
from tests.support.builders import REP, maildir, message


def test_a_maildir_file_name_that_is_not_utf8_is_synced(app, crm, add_mailbox, sync, tmp_path: Path) -> None:
    path = maildir(tmp_path / "alice", [message("ok@acme.example", "wile@acme.example", [REP], "Fine")])
    odd = os.path.join(os.fsencode(path / "cur"), b"1700000000.M1P2.h\xff:2,S")
    with open(odd, "wb") as fh:
        fh.write(message("odd@acme.example", "wile@acme.example", [REP], "Odd name"))
    add_mailbox("alice", path)
    assert sync().stats.logged == 2
    with app.sessions() as session:
        ids = set(session.scalars(select(RawItem.external_id)))
    assert "1700000000.M1P2.h\\xff" in ids  # the undecodable byte as an escape
    assert sync().stats.logged == 0  # and the next run knows it


def test_an_eml_file_name_that_is_not_utf8_is_listed_and_read(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    with open(os.path.join(os.fsencode(tmp_path / "sub"), b"r\xe9ply.eml"), "wb") as fh:
        fh.write(b"Subject: x\r\n\r\nbody")
    conn = EmlDirConnector(f"eml://{tmp_path}")
    page = conn.list_changes(".", None)
    assert [r.external_id for r in page.upserts] == ["sub/r\\xe9ply.eml"]
    assert [i.data for i in conn.fetch(".", page.upserts)] == [b"Subject: x\r\n\r\nbody"]

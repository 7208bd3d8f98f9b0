"""Blob packs: a fetched page's messages in one file, indexed in the database with the page's rows."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_store.blobs import BlobMissing, BlobStore, PackWriter
from crm_store.db import transaction
from crm_store.models import Mailbox, PackedBlob, RawItem
from sync_service.bootstrap import App
from sync_service.connectors.registry import open_connector
from sync_service.pipeline.fetch import sync_folder
from tests.support.builders import REP, maildir, message
from tests.support.faults import fail_while_writing


def _packs(app: App) -> list[Path]:
    folder = app.settings.data_dir / "blobs" / "packs"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _write(app: App, blobs: list[bytes], budget: int = 1 << 20) -> list[str]:
    writer = PackWriter(app.blobs, budget=budget)
    digests = [writer.add(data) for data in blobs]
    entries = writer.close()
    with transaction(app.sessions) as session:
        app.blobs.record_packed(session, entries)
    return digests


def test_a_page_of_blobs_is_one_file_and_reads_back(app: App) -> None:
    blobs = [f"message {i}".encode() * 50 for i in range(20)]
    digests = _write(app, [*blobs, blobs[0]])  # the repeat is stored once
    assert digests[:20] == [hashlib.sha256(b).hexdigest() for b in blobs] and digests[20] == digests[0]
    [pack] = _packs(app)
    assert pack.stat().st_size == sum(len(b) for b in blobs)
    assert not list((app.settings.data_dir / "blobs").glob("??/*"))  # no file per blob
    assert app.blobs.get(digests[7]) == blobs[7] and app.blobs.exists(digests[7])
    many = app.blobs.get_many([*digests, "0" * 64])
    assert [many[d] for d in digests[:20]] == blobs and "0" * 64 not in many


def test_what_is_stored_already_is_not_written_again(app: App) -> None:
    loose = app.blobs.put(b"a file already")
    first = _write(app, [b"packed before"])
    _write(app, [b"a file already", b"packed before", b"new"])
    sizes = [p.stat().st_size for p in _packs(app)]
    assert sorted(sizes) == sorted([len(b"packed before"), len(b"new")])
    assert app.blobs.get(loose) == b"a file already" and app.blobs.get(first[0]) == b"packed before"


def test_the_budget_bounds_what_waits_and_big_blobs_become_files(app: App) -> None:
    blobs = [os.urandom(300) for _ in range(10)] + [os.urandom(5000)]
    digests = _write(app, blobs, budget=1000)  # several flushes into one pack; the big one alone
    [pack] = _packs(app)
    assert pack.stat().st_size == 3000
    assert app.blobs.path_of(digests[-1]).read_bytes() == blobs[-1]
    assert [app.blobs.get(d) for d in digests] == blobs


def test_a_failed_page_leaves_nothing_behind(app: App) -> None:
    with pytest.raises(RuntimeError), PackWriter(app.blobs, budget=100) as writer:
        writer.add(os.urandom(60))
        writer.add(os.urandom(60))  # over the budget: flushed, the temporary pack file exists
        assert list((app.settings.data_dir / "blobs" / "packs").iterdir())
        raise RuntimeError("the connection dropped")
    assert list((app.settings.data_dir / "blobs" / "packs").iterdir()) == []


def test_unrecorded_or_damaged_packed_bytes_are_missing_not_wrong(app: App) -> None:
    writer = app.blobs.pack_writer()
    lost = writer.add(b"never recorded")  # as if the process died before the page's transaction committed
    writer.close()
    with pytest.raises(BlobMissing):
        app.blobs.get(lost)
    [kept] = _write(app, [b"recorded"])
    pack = next(p for p in _packs(app) if p.read_bytes() == b"recorded")
    pack.write_bytes(b"RECORDED")
    with pytest.raises(BlobMissing):
        app.blobs.get(kept)
    assert app.blobs.get_many([kept]) == {}


def test_the_same_blob_recorded_by_two_syncs_keeps_one_entry(app: App) -> None:
    entries = [PackWriter(app.blobs).add(b"x") for _ in range(2)]  # two writers, as two workers would
    assert entries[0] == entries[1]
    first, second = app.blobs.pack_writer(), app.blobs.pack_writer()
    first.add(b"shared")
    second.add(b"shared")
    for writer in (first, second):
        packed = writer.close()
        with transaction(app.sessions) as session:
            app.blobs.record_packed(session, packed)
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(PackedBlob)) == 1
    assert app.blobs.get(hashlib.sha256(b"shared").hexdigest()) == b"shared"


def test_a_store_without_a_database_keeps_files(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    assert not store.packs
    with pytest.raises(RuntimeError):
        store.pack_writer()
    assert store.get(store.put(b"loose")) == b"loose"


def test_a_sync_writes_a_pack_per_page(app: App, crm, add_mailbox, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mails = [message(f"p{i}@acme.example", "wile@acme.example", [REP], f"Page mail {i}") for i in range(25)]
    box = maildir(tmp_path / "alice", mails)
    add_mailbox("alice", box)
    with app.sessions() as session:
        mailbox_id = session.scalars(select(Mailbox.id)).one()
    app.settings = replace(app.settings, batch_size=10)
    result = sync_folder(app, mailbox_id, open_connector(f"maildir://{box}"), ".")
    assert (result.stored, result.pages) == (25, 3)
    assert len(_packs(app)) == 3
    with app.sessions() as session:
        digests = list(session.scalars(select(RawItem.sha256)))
    stored = app.blobs.get_many(d for d in digests if d)
    assert sorted(stored.values()) == sorted(mails)


def test_a_batchs_attachments_are_one_pack_and_a_redone_batch_leaves_none(  # type: ignore[no-untyped-def]
    app: App, crm, add_mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crm_store.models import Document
    from sync_service.pipeline.process import process_pending

    def mails(tag: str) -> list[bytes]:
        return [
            message(f"{tag}{i}@acme.example", "wile@acme.example", [REP], f"{tag} {i}",
                    attachment=(f"s{i}.pdf", f"%PDF {tag}{i}".encode() * 40, "application/pdf"))
            for i in range(6)
        ]  # fmt: skip

    def fetch(name: str, box: Path) -> None:
        add_mailbox(name, box)
        with app.sessions() as session:
            mailbox_id = session.scalars(select(Mailbox.id).where(Mailbox.name == name)).one()
        sync_folder(app, mailbox_id, open_connector(f"maildir://{box}"), ".")

    fetch("alice", maildir(tmp_path / "alice", mails("A")))
    before = set(_packs(app))
    heal = fail_while_writing(monkeypatch, "A 3")
    stats = process_pending(app)  # the optimistic pass fails: the batch is redone item by item
    assert (stats.logged, stats.quarantined) == (5, 1)
    assert set(_packs(app)) == before  # the failed pass left no pack (item by item stores files)
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(PackedBlob)) == 6  # the messages only
    heal()

    fetch("bob", maildir(tmp_path / "bob", mails("B")))
    fetched = set(_packs(app))
    assert process_pending(app).quarantined == 0
    [attachments] = [p for p in _packs(app) if p not in fetched]  # the clean batch: one pack
    with app.sessions() as session:
        shas = set(session.scalars(select(Document.sha256).where(Document.kind == "attachment")))
    assert len(shas) == 11 and set(app.blobs.get_many(shas)) == shas
    assert attachments.stat().st_size == sum(len(f"%PDF B{i}".encode() * 40) for i in range(6))


def test_packs_a_killed_sync_left_behind_are_found_and_removed(app: App) -> None:
    [kept] = _write(app, [b"recorded"])
    orphan = app.blobs.pack_writer()
    orphan.add(b"written, never recorded")
    orphan.close()  # as if the process died before the page's transaction committed
    leftover = app.settings.data_dir / "blobs" / "packs" / ".tmp-deadbeef.pack"
    leftover.write_bytes(b"half a page")
    assert app.blobs.unreferenced_packs(min_age_seconds=3600) == []  # too new: a sync may be writing them
    old = 1_000_000_000
    for path in _packs(app):
        os.utime(path, (old, old))
    found = app.blobs.unreferenced_packs(min_age_seconds=3600)
    assert sorted(p.name for p, _size in found) == sorted(
        [leftover.name, next(p.name for p in _packs(app) if p.read_bytes() == b"written, never recorded")]
    )
    for path, _size in found:
        path.unlink()
    assert app.blobs.get(kept) == b"recorded" and app.blobs.unreferenced_packs(min_age_seconds=0) == []


def test_blobs_orphans_command_lists_then_deletes(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("init").code == 0
    packs = Path("data") / "blobs" / "packs"
    packs.mkdir(parents=True)
    stray = packs / f"{'a' * 32}.pack"
    stray.write_bytes(b"x" * 2048)
    os.utime(stray, (1_000_000_000, 1_000_000_000))
    listed = cli("blobs", "orphans")
    assert listed.code == 0 and stray.name in listed.out and "1 unreferenced pack file(s)" in listed.out
    assert stray.exists()
    removed = cli("blobs", "orphans", "--delete")
    assert removed.code == 0 and "removed" in removed.out and not stray.exists()
    assert "0 unreferenced pack file(s)" in cli("blobs", "orphans").out

"""Pack compaction (crm_store.compact): packs nothing refers to are deleted, mostly unreferenced ones rewritten,
every referenced blob still reads back and matches its hash; a crash leaves everything readable; released bytes
are held for the minimum age and a blob referenced again meanwhile is kept."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_store import compact
from crm_store.blobs import BlobMissing, BlobStore
from crm_store.db import transaction
from crm_store.models import Document, PackedBlob
from sync_service.bootstrap import App
from sync_service.errors import ConfigError
from tests.support.packs import pack_files, write_pack


def _refer(app: App, *digests: str) -> None:
    """Documents that refer to these blobs (a logged email's .eml and attachments are documents)."""
    with transaction(app.sessions) as session:
        session.add_all(Document(sha256=d, filename=f"{d[:8]}.eml", size=1) for d in digests)


def _fresh(app: App) -> BlobStore:
    """A store that knows nothing of what this process did (as another process reading it)."""
    return BlobStore(app.settings.data_dir, app.engine)


def _rows(app: App) -> dict[str, str]:
    with app.sessions() as session:
        return {sha: pack for sha, pack in session.execute(select(PackedBlob.sha256, PackedBlob.pack))}


def _blobs(n: int, size: int = 4000) -> list[bytes]:
    return [os.urandom(size) for _ in range(n)]


def test_a_mixed_pack_is_rewritten_and_every_referenced_blob_reads_back(app: App) -> None:
    blobs = _blobs(10)
    digests = write_pack(app, blobs)
    live = [0, 4, 9]
    _refer(app, *(digests[i] for i in live))
    [old] = pack_files(app)

    report = compact.compact(app.blobs, app.sessions, min_age=0)

    assert (report.packs_rewritten, report.packs_deleted, report.packs_thinned) == (1, 0, 0)
    [new] = pack_files(app)
    assert new != old and not old.exists()  # held for no time (min_age 0): deleted in the same run
    assert new.stat().st_size == 3 * 4000 and report.released == 7 * 4000 and report.freed == 7 * 4000
    store = _fresh(app)
    for i in live:
        data = store.get(digests[i])
        assert data == blobs[i] and hashlib.sha256(data).hexdigest() == digests[i]
    for i in set(range(10)) - set(live):
        with pytest.raises(BlobMissing):
            store.get(digests[i])
    assert set(_rows(app)) == {digests[i] for i in live} and set(_rows(app).values()) == {new.name}
    assert store.unreferenced_packs(min_age_seconds=0) == []  # nothing left behind
    assert compact.compact(app.blobs, app.sessions, min_age=0).as_dict() == compact.CompactReport().as_dict()


def test_a_pack_nothing_refers_to_is_deleted_and_other_packs_stay(app: App) -> None:
    dead = write_pack(app, _blobs(3))
    kept_blobs = _blobs(2)
    kept = write_pack(app, kept_blobs)
    _refer(app, *kept)
    before = {p.name: p.read_bytes() for p in pack_files(app)}

    report = compact.compact(app.blobs, app.sessions, min_age=0)

    assert (report.packs_deleted, report.packs_rewritten, report.freed) == (1, 0, 3 * 4000)
    [left] = pack_files(app)
    assert left.read_bytes() == before[left.name]  # the referenced pack is not touched
    assert [_fresh(app).get(d) for d in kept] == kept_blobs
    assert not set(dead) & set(_rows(app))


def test_a_mostly_referenced_pack_stays_and_loses_only_the_index_rows_of_dead_blobs(app: App) -> None:
    blobs = _blobs(4)
    digests = write_pack(app, blobs)
    _refer(app, *digests[:3])
    [pack] = pack_files(app)
    content = pack.read_bytes()

    report = compact.compact(app.blobs, app.sessions, min_age=0)

    assert (report.packs_thinned, report.unindexed, report.packs_rewritten) == (1, 4000, 0)
    assert pack.read_bytes() == content
    with pytest.raises(BlobMissing):
        _fresh(app).get(digests[3])
    assert [_fresh(app).get(d) for d in digests[:3]] == blobs[:3]
    # rewritten once a pack falls below the threshold — at once with --rewrite-below 100 %
    report = compact.compact(app.blobs, app.sessions, min_age=0, rewrite_below=1.0)
    assert report.packs_rewritten == 1 and not pack.exists()
    assert [_fresh(app).get(d) for d in digests[:3]] == blobs[:3]


def test_a_crash_between_writing_the_new_pack_and_the_commit_leaves_everything_readable(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = _blobs(6)
    digests = write_pack(app, blobs)
    _refer(app, digests[0])
    [old] = pack_files(app)
    real = compact._move_rows

    def crash(*args, **kwargs):  # type: ignore[no-untyped-def]
        real(*args, **kwargs)  # the rows are moved inside the transaction, then the process dies
        raise RuntimeError("killed")

    monkeypatch.setattr(compact, "_move_rows", crash)
    with pytest.raises(RuntimeError):
        compact.compact(app.blobs, app.sessions, min_age=0)

    store = _fresh(app)
    assert [store.get(d) for d in digests] == blobs  # nothing changed that a row names
    assert set(_rows(app).values()) == {old.name}
    [orphan] = [p for p in pack_files(app) if p != old]  # the new pack: named by no row
    assert [p for p, _size in store.unreferenced_packs(min_age_seconds=0)] == [orphan]

    monkeypatch.setattr(compact, "_move_rows", real)
    report = compact.compact(app.blobs, app.sessions, min_age=0)  # cleans up, then compacts
    assert report.packs_rewritten == 1 and not orphan.exists() and not old.exists()
    assert _fresh(app).get(digests[0]) == blobs[0]
    assert _fresh(app).unreferenced_packs(min_age_seconds=0) == []
    assert list((app.settings.data_dir / "blobs" / "compaction").glob("*.json")) == []


def test_a_crash_after_the_commit_is_finished_by_the_next_run(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = _blobs(4)
    digests = write_pack(app, blobs)
    _refer(app, digests[1])
    [old] = pack_files(app)

    def crash(path: str | Path, times: object = None) -> None:
        raise RuntimeError("killed after the commit")

    monkeypatch.setattr(compact.os, "utime", crash)
    with pytest.raises(RuntimeError):
        compact.compact(app.blobs, app.sessions, min_age=0)
    monkeypatch.undo()
    assert _fresh(app).get(digests[1]) == blobs[1]  # committed: the row names the new pack
    assert old.exists()  # not released yet: its manifest has no hold time

    report = compact.compact(app.blobs, app.sessions, min_age=0)
    assert not old.exists() and report.freed == sum(map(len, blobs)) - len(blobs[1])
    assert _fresh(app).get(digests[1]) == blobs[1]


def test_released_bytes_are_held_for_the_minimum_age_and_a_blob_referenced_meanwhile_is_kept(app: App) -> None:
    blobs = _blobs(3)
    digests = write_pack(app, blobs)
    [pack] = pack_files(app)
    os.utime(pack, (1_000_000_000, 1_000_000_000))  # an old pack

    report = compact.compact(app.blobs, app.sessions, min_age=3600)
    assert (report.packs_deleted, report.freed, report.held) == (1, 0, 3 * 4000)
    assert pack.exists() and pack.stat().st_mtime > 1_000_000_000  # held, and too new for `blobs orphans`
    assert _fresh(app).unreferenced_packs(min_age_seconds=3600) == []
    with pytest.raises(BlobMissing):  # no sync finds it stored any more
        _fresh(app).get(digests[2])

    # A sync that found the blob stored just before it was released commits a row naming it afterwards.
    _refer(app, digests[2])
    assert compact.settle(app.blobs, app.sessions, min_age=3600).held == 3 * 4000  # still held
    report = compact.settle(app.blobs, app.sessions, min_age=0)
    assert (report.restored, report.freed) == (1, 3 * 4000) and not pack.exists()
    assert _fresh(app).get(digests[2]) == blobs[2]
    with pytest.raises(BlobMissing):
        _fresh(app).get(digests[0])


def test_young_packs_are_left_alone(app: App) -> None:
    digests = write_pack(app, _blobs(2))
    report = compact.compact(app.blobs, app.sessions)  # default minimum age: an hour
    assert report.young == 1 and report.packs_deleted == 0
    assert set(_rows(app)) == set(digests)


def test_unreferenced_loose_files_the_caller_names_are_released(app: App) -> None:
    dead, live, unnamed = (app.blobs.put(os.urandom(100)) for _ in range(3))
    _refer(app, live)
    report = compact.compact(app.blobs, app.sessions, loose=[dead, live], min_age=0)
    assert (report.loose_held, report.freed) == (1, 100)
    assert not app.blobs.path_of(dead).exists()
    assert app.blobs.path_of(live).exists() and app.blobs.path_of(unnamed).exists()


def test_a_second_compaction_at_the_same_time_is_refused(app: App) -> None:
    with compact.exclusive(app.blobs), pytest.raises(ConfigError, match="another purge"):
        compact.compact(app.blobs, app.sessions, min_age=0)


def test_the_choice_per_pack() -> None:
    from crm_store.blobs import PackedEntry

    def state(live: list[int], dead: list[int], size: int | None = None) -> compact.PackState:
        entries = [PackedEntry(f"{i:064x}", "p.pack", 0, n) for i, n in enumerate(live + dead)]
        return compact.PackState(
            "p.pack", size or sum(live + dead), tuple(entries[: len(live)]), tuple(entries[len(live) :])
        )

    assert compact.choose(state([], [10])) == compact.DELETE
    assert compact.choose(state([4], [6])) == compact.REWRITE
    assert compact.choose(state([6], [4])) == compact.DROP
    assert compact.choose(state([6], [4]), rewrite_below=1.0) == compact.REWRITE
    assert compact.choose(state([10], [])) is None
    assert compact.choose(state([10], [], size=30)) == compact.REWRITE  # bytes no row names (two syncs, one blob)


def test_only_live_rows_count_as_references(app: App) -> None:
    digests = write_pack(app, _blobs(2))
    _refer(app, digests[0])
    with app.sessions() as session:
        assert compact.referenced(session, digests) == {digests[0]}
        assert session.scalar(select(func.count()).select_from(PackedBlob)) == 2

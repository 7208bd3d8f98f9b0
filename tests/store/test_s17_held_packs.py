"""`blobs orphans` and the purge's hold agree: a pack file a purge released and still holds (its manifest under
``blobs/compaction/`` says so) is never listed as an orphan, whatever ``--min-age`` the orphan collector is given,
so a blob referenced again meanwhile is still restored when the purge settles."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from crm_store import compact
from crm_store.blobs import BlobMissing, BlobStore
from crm_store.db import transaction
from crm_store.models import Document
from sync_service.bootstrap import App
from tests.support.packs import pack_files, write_pack


def _held_pack(app: App) -> tuple[Path, list[bytes], list[str]]:
    """A pack nothing refers to, released by a purge holding it for an hour; two minutes have passed since."""
    blobs = [os.urandom(3000) for _ in range(3)]
    digests = write_pack(app, blobs)
    [pack] = pack_files(app)
    os.utime(pack, (1_000_000_000, 1_000_000_000))  # an old pack
    report = compact.compact(app.blobs, app.sessions, min_age=3600)
    assert report.packs_deleted == 1 and report.freed == 0 and pack.exists()  # held
    two_minutes_ago = time.time() - 120
    os.utime(pack, (two_minutes_ago, two_minutes_ago))
    return pack, blobs, digests


def test_a_held_pack_is_no_orphan_whatever_the_minimum_age(app: App) -> None:
    pack, blobs, digests = _held_pack(app)
    store = BlobStore(app.settings.data_dir, app.engine)
    assert store.unreferenced_packs(min_age_seconds=60) == []  # below the purge's hold: still not offered
    assert store.unreferenced_packs(min_age_seconds=0) == []

    # A sync that found the blob stored just before the release commits a row naming it; the purge's settle
    # stores it again from the held pack.
    with transaction(app.sessions) as session:
        session.add(Document(sha256=digests[1], filename="x.eml", size=1))
    report = compact.settle(app.blobs, app.sessions, min_age=0)
    assert (report.restored, report.freed) == (1, 3 * 3000) and not pack.exists()
    assert store.get(digests[1]) == blobs[1]
    with pytest.raises(BlobMissing):
        store.get(digests[0])
    assert store.unreferenced_packs(min_age_seconds=0) == []


def test_a_held_pack_whose_manifest_is_unreadable_is_no_orphan_either(app: App) -> None:
    pack, _blobs, _digests = _held_pack(app)
    manifest = app.settings.data_dir / "blobs" / "compaction" / f"{pack.name}.json"
    manifest.write_text("{not json")  # damaged: left for a person to look at, and so is its pack
    assert BlobStore(app.settings.data_dir, app.engine).unreferenced_packs(min_age_seconds=0) == []


def test_blobs_orphans_with_a_short_minimum_age_leaves_a_held_pack(cli) -> None:  # type: ignore[no-untyped-def]
    from sync_service.bootstrap import bootstrap
    from sync_service.config import load_settings

    assert cli("init").code == 0
    app = bootstrap(load_settings())
    try:
        pack, _blobs, _digests = _held_pack(app)
    finally:
        app.close()
    result = cli("blobs", "orphans", "--min-age", "1", "--delete")
    assert result.code == 0 and "0 unreferenced pack file(s)" in result.out
    assert pack.exists()

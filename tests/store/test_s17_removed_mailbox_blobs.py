"""What `crm-sync mailbox remove` leaves in the blob store, and what `purge skipped` then collects: the fetched bytes
of a removed mailbox that nothing kept refers to — packed or stored as single ("loose") files, a message over a
pack writer's budget — are released by the next purge; the bytes of documents, of another mailbox's copies and
of skipped mail within its retention stay, as do loose files younger than the purge's minimum age."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta

import pytest

from crm_store import compact
from crm_store.blobs import BlobMissing, BlobStore, PackWriter
from crm_store.db import transaction
from crm_store.models import Document, ItemSource, Mailbox, PackedBlob, RawItem, SyncedItem
from sync_service import mailboxes
from sync_service.bootstrap import App
from sync_service.purge import purge_skipped
from sync_service.retention import RELEASED_STATES
from tests.support.builders import REP, REP2

LONG_AGO = 1_000_000_000  # a file's modification time: older than any minimum age
OLD = datetime.now(UTC) - timedelta(days=200)


def _mailbox(app: App, name: str, owner: str) -> int:
    with transaction(app.sessions) as session:
        user = mailboxes.get_or_create_user(session, owner)
        box = Mailbox(name=name, owner_id=user.id, source_url=f"maildir:///{name}", state="idle")
        session.add(box)
        session.flush()
        return box.id


def _loose(app: App, data: bytes, *, old: bool = True) -> str:
    digest = app.blobs.put(data)
    if old:
        os.utime(app.blobs.path_of(digest), (LONG_AGO, LONG_AGO))
    return digest


def _raw(session, mailbox_id: int, n: int, digest: str, kind: str = "message") -> RawItem:  # type: ignore[no-untyped-def]
    raw = RawItem(
        mailbox_id=mailbox_id,
        folder="INBOX",
        external_id=str(n),
        kind=kind,
        sha256=digest,
        state="done",
        received_at=OLD,
        processed_at=OLD,
    )
    session.add(raw)
    session.flush()
    return raw


@pytest.fixture
def world(app: App) -> dict[str, str]:
    """Mailbox alice's fetched bytes, some shared with what stays; then alice is removed."""
    alice, bob = _mailbox(app, "alice", REP), _mailbox(app, "bob", REP2)
    blobs = {
        "alone": _loose(app, os.urandom(5000)),  # a big message only alice had: stored whole
        "calendar": _loose(app, os.urandom(700)),  # alice's calendar file
        "skipped": _loose(app, os.urandom(900)),  # private mail only alice had: a skipped item keeps it
        "document": _loose(app, os.urandom(800)),  # the .eml of a logged email: a document
        "shared": _loose(app, os.urandom(600)),  # also in bob's mailbox
        "young": _loose(app, os.urandom(400), old=False),  # written within the minimum age
    }
    writer = PackWriter(app.blobs)
    blobs["packed"] = writer.add(os.urandom(3000))
    with transaction(app.sessions) as session:
        app.blobs.record_packed(session, writer.close())
        for n, key in enumerate(["alone", "calendar", "skipped", "document", "shared", "young", "packed"]):
            raw = _raw(session, alice, n, blobs[key], "calendar" if key == "calendar" else "message")
            if key == "skipped":
                item = SyncedItem(
                    kind="email",
                    dedupe_key="mid:private@x",
                    message_id="private@x",
                    sha256=blobs[key],
                    facts={},
                    skip_reason="private",
                    created_at=OLD,
                )
                session.add(item)
                session.flush()
                session.add(ItemSource(item_id=item.id, raw_item_id=raw.id))
        _raw(session, bob, 0, blobs["shared"])
        session.add(Document(sha256=blobs["document"], filename="logged.eml", size=800))
    for pack in (app.settings.data_dir / "blobs" / "packs").glob("*.pack"):
        os.utime(pack, (LONG_AGO, LONG_AGO))
    with transaction(app.sessions) as session:
        mailboxes.remove_mailbox(session, "alice")
    return blobs


def _stored(app: App, digests: dict[str, str]) -> set[str]:
    store = BlobStore(app.settings.data_dir, app.engine)  # another process's view
    found = set()
    for key, digest in digests.items():
        try:
            store.get(digest)
            found.add(key)
        except BlobMissing:
            pass
    return found


def test_mailbox_remove_keeps_the_bytes_until_a_purge(app: App, world: dict[str, str]) -> None:
    with app.sessions() as session:
        assert session.query(RawItem).count() == 1  # bob's: alice's raw items went with her
        assert session.query(PackedBlob).count() == 1
    assert _stored(app, world) == set(world)
    assert BlobStore(app.settings.data_dir, app.engine).unreferenced_packs(min_age_seconds=0) == []


def test_a_purge_releases_what_only_a_removed_mailbox_stored(app: App, world: dict[str, str]) -> None:
    preview = purge_skipped(app, 90, dry_run=True, min_age=3600)
    assert preview.blobs.loose_held == 3  # alone, calendar, skipped (whose item the purge would purge)

    report = purge_skipped(app, 90, min_age=3600)  # the skipped item is older than the retention: purged

    assert report.purged == 1
    assert (report.blobs.packs_deleted, report.blobs.loose_held) == (1, 3)
    assert _stored(app, world) == {"document", "shared", "young"}
    assert report.blobs.freed == 0  # held for the minimum age first
    settled = compact.settle(app.blobs, app.sessions, released_states=RELEASED_STATES, min_age=0)
    assert (settled.freed, settled.restored) == (5000 + 700 + 900 + 3000, 0)
    assert _stored(app, world) == {"document", "shared", "young"}
    assert purge_skipped(app, 90, min_age=3600).blobs.loose_held == 0  # nothing left to release


def test_skipped_mail_within_its_retention_keeps_its_bytes(app: App, world: dict[str, str]) -> None:
    report = purge_skipped(app, 365, min_age=3600)
    assert report.purged == 0 and report.blobs.loose_held == 2  # alone, calendar
    assert _stored(app, world) == {"document", "shared", "young", "skipped"}


def test_unreferenced_loose_files_of_both_layouts_are_found_and_nothing_else(app: App) -> None:
    current = _loose(app, os.urandom(100))
    legacy_data = os.urandom(100)
    legacy = hashlib.sha256(legacy_data).hexdigest()
    folder = app.settings.data_dir / "blobs" / legacy[:2] / legacy[2:4]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / legacy).write_bytes(legacy_data)  # a store written before 2026-11
    os.utime(folder / legacy, (LONG_AGO, LONG_AGO))
    (app.settings.data_dir / "blobs" / current[:2] / ".tmp-1-2").write_bytes(b"a put in progress")
    named = _loose(app, os.urandom(100))
    with transaction(app.sessions) as session:
        session.add(Document(sha256=named, filename="a.pdf", size=100))
    with app.sessions() as session:
        assert sorted(compact.unreferenced_loose(app.blobs, session, min_age=3600)) == sorted([current, legacy])
    report = purge_skipped(app, 90, min_age=0)
    assert (report.blobs.loose_held, report.blobs.freed) == (2, 200)
    assert not (folder / legacy).exists() and app.blobs.get(named)

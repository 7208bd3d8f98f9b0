"""Purging skipped mail (crm-sync purge skipped; sync_service.purge and .retention): old skipped emails lose their
bytes and facts; logged mail, its documents, a copy another mailbox logged, young, quarantined and calendar items
stay byte-identical; a purged message is neither fetched nor processed again, and re-matching never reads it."""

from __future__ import annotations

import mailbox as mailboxes_on_disk
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from crm_store.blobs import BlobMissing, BlobStore
from crm_store.db import transaction
from crm_store.models import (
    Activity,
    Contact,
    ContactEmail,
    Document,
    ItemSource,
    QuarantineEntry,
    RawItem,
    SyncedItem,
)
from sync_service import mailboxes
from sync_service.bootstrap import App
from sync_service.pipeline.explain import explain_message
from sync_service.pipeline.process import process_pending
from sync_service.pipeline.rematch import rematch
from sync_service.purge import purge_skipped
from sync_service.retention import KEPT_QUARANTINED, PURGED
from tests.support.builders import REP, REP2, ics, message, vevent

OLD = datetime.now(UTC) - timedelta(days=200)
FRIEND = "friend@elsewhere.example"  # resolves to nothing: private mail
PAD = 300  # skipped bodies are large, so the fetched page's pack is mostly theirs


def _mail(key: str, sender: str, to: list[str], subject: str, marker: str, **kwargs: Any) -> bytes:
    return message(key, sender, to, subject, body=f"{marker} " * PAD, **kwargs)


@dataclass
class Scenario:
    app: App
    alice: Path
    raws: dict[str, str]  # message key → sha256 of the raw item's bytes
    documents: dict[str, bytes]  # every document's sha256 → its bytes, before the purge


def _sha(app: App, key: str) -> str:
    with app.sessions() as session:
        rows = session.execute(
            select(RawItem.sha256)
            .join(ItemSource, ItemSource.raw_item_id == RawItem.id)
            .join(SyncedItem, SyncedItem.id == ItemSource.item_id)
            .where(SyncedItem.dedupe_key == f"msg:{key}")
        ).scalars()
        return next(iter(rows))


def _item(app: App, key: str) -> SyncedItem:
    with app.sessions() as session:
        return session.scalars(select(SyncedItem).where(SyncedItem.dedupe_key == key)).one()


def _raw_states(app: App, key: str) -> list[tuple[str, datetime | None]]:
    with app.sessions() as session:
        rows = session.execute(
            select(RawItem.state, RawItem.processed_at)
            .join(ItemSource, ItemSource.raw_item_id == RawItem.id)
            .join(SyncedItem, SyncedItem.id == ItemSource.item_id)
            .where(SyncedItem.dedupe_key == f"msg:{key}")
            .order_by(RawItem.id)
        )
        return [(state, at) for state, at in rows]


def _on_disk(app: App, marker: str) -> bool:
    """Whether any file of the data directory holds ``marker`` (packs, loose files, held files)."""
    needle = marker.encode()
    return any(needle in p.read_bytes() for p in app.settings.data_dir.rglob("*") if p.is_file())


def _fresh(app: App) -> BlobStore:
    return BlobStore(app.settings.data_dir, app.engine)


def _count(app: App, model: type) -> int:
    with app.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def scenario(app: App, crm, add_mailbox, sync, tmp_path: Path) -> Scenario:  # type: ignore[no-untyped-def]
    """Alice's inbox: a logged email with an attachment, old private / internal / bulk mail, young private
    mail, old private mail quarantined as partly applied, and an internal meeting; her sent copy of a mail with a
    Bcc to a contact (logged) whose copy in Bob's mailbox is all-internal."""
    inbox = [
        message("logged@acme.example", "wile@acme.example", [REP], "Rocket pricing",
                attachment=("quote.pdf", b"%PDF quote " * 20, "application/pdf")),
        _mail("private@elsewhere", FRIEND, [REP], "Dinner on Friday", "PRIVATE-DINNER"),
        _mail("internal@northwind", REP2, [REP], "Lunch?", "INTERNAL-LUNCH"),
        _mail("deals@shop", "news@shop.example", [REP], "Deals", "BULK-DEALS", headers={"List-Id": "<deals.shop>"}),
        _mail("young@elsewhere", FRIEND, [REP], "Pictures", "YOUNG-PRIVATE"),
        message("held@elsewhere", "stranger@elsewhere.example", [REP], "Held", body="HELD-PRIVATE"),
    ]  # fmt: skip
    alices = message("bcc@northwind", REP, [REP2], "Rocket pricing, Bob", headers={"Bcc": "wile@acme.example"})
    bobs = message("bcc@northwind", REP, [REP2], "Rocket pricing, Bob", body="BOBS-COPY")
    alice = tmp_path / "alice"
    box = mailboxes_on_disk.Maildir(alice, create=True)
    for raw in inbox:
        box.add(raw)
    box.add_folder("Sent").add(alices)
    start = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
    (alice / "team.ics").write_bytes(ics(vevent("standup@northwind", "Stand-up", start, attendees=(REP2,))))
    bob = tmp_path / "bob"
    mailboxes_on_disk.Maildir(bob, create=True).add(bobs)
    add_mailbox("alice", alice)
    add_mailbox("bob", bob, owner=REP2)
    sync()
    with transaction(app.sessions) as session:
        # everything but the young mail was synced 200 days ago
        young = select(ItemSource.raw_item_id).join(SyncedItem, SyncedItem.id == ItemSource.item_id)
        young = young.where(SyncedItem.dedupe_key == "msg:young@elsewhere")
        session.execute(update(RawItem).where(RawItem.id.not_in(young)).values(received_at=OLD))
        session.execute(update(SyncedItem).where(SyncedItem.dedupe_key != "msg:young@elsewhere").values(created_at=OLD))
        held = session.scalars(select(RawItem).where(RawItem.id.in_(
            select(ItemSource.raw_item_id).join(SyncedItem, SyncedItem.id == ItemSource.item_id)
            .where(SyncedItem.dedupe_key == "msg:held@elsewhere")
        ))).one()  # fmt: skip
        session.add(QuarantineEntry(raw_item_id=held.id, mailbox_id=held.mailbox_id, external_id=held.external_id,
                                    reason="partly applied; skipped: test"))  # fmt: skip
        documents = list(session.scalars(select(Document.sha256)))
    keys = ["logged@acme.example", "private@elsewhere", "internal@northwind", "deals@shop", "young@elsewhere"]
    raws = {key: _sha(app, key) for key in [*keys, "held@elsewhere"]}
    return Scenario(app, alice, raws, {sha: app.blobs.get(sha) for sha in documents})


PURGED_KEYS = ("private@elsewhere", "internal@northwind", "deals@shop")


def test_old_skipped_mail_loses_its_bytes_and_facts_and_nothing_else_changes(scenario: Scenario) -> None:
    app = scenario.app
    assert _item(app, "msg:private@elsewhere").skip_reason == "unmatched"
    activities, events = _count(app, Activity), _item(app, "evt:standup@northwind|")
    assert events.skip_reason == "internal-only" and _on_disk(app, "PRIVATE-DINNER")

    report = purge_skipped(app, 90, min_age=0)

    assert (report.purged, report.copies) == (3, 3)
    assert dict(report.kept) == {KEPT_QUARANTINED: 1}
    store = _fresh(app)
    for key in PURGED_KEYS:
        item = _item(app, f"msg:{key}")
        assert (item.skip_reason, item.subject, item.sha256, item.message_id) == (PURGED, "", None, key)
        assert "participants" not in item.facts and "sender" not in item.facts
        assert [state for state, _at in _raw_states(app, key)] == [PURGED]
        with pytest.raises(BlobMissing):
            store.get(scenario.raws[key])
    for marker in ("PRIVATE-DINNER", "INTERNAL-LUNCH", "BULK-DEALS"):
        assert not _on_disk(app, marker), marker  # the mixed pack was rewritten without them
    assert report.blobs.packs_rewritten >= 1 and report.blobs.freed > 0
    # logged mail and its documents, byte for byte
    assert _count(app, Activity) == activities
    assert {sha: store.get(sha) for sha in scenario.documents} == scenario.documents
    assert store.get(scenario.raws["logged@acme.example"])
    # the email Alice's copy logged: Bob's all-internal copy of it stays too
    logged = _item(app, "msg:bcc@northwind")
    assert logged.skip_reason is None and logged.sha256
    assert [state for state, _at in _raw_states(app, "bcc@northwind")] == ["done", "done"]
    assert _on_disk(app, "BOBS-COPY")
    # young, quarantined, calendar: as they were
    assert _item(app, "msg:young@elsewhere").skip_reason == "unmatched"
    assert store.get(scenario.raws["young@elsewhere"]) and _on_disk(app, "YOUNG-PRIVATE")
    assert _item(app, "msg:held@elsewhere").skip_reason == "unmatched" and store.get(scenario.raws["held@elsewhere"])
    event = _item(app, "evt:standup@northwind|")
    assert (event.skip_reason, event.facts) == (events.skip_reason, events.facts)
    # a second run finds nothing more to do
    again = purge_skipped(app, 90, min_age=0)
    assert (again.purged, again.copies, again.blobs.released) == (0, 0, 0)


def test_a_purged_message_is_not_fetched_or_processed_again_by_the_next_sync(  # type: ignore[no-untyped-def]
    scenario: Scenario, sync
) -> None:
    app = scenario.app
    purge_skipped(app, 90, min_age=0)
    before = {key: _raw_states(app, key) for key in PURGED_KEYS}
    items, sources = _count(app, SyncedItem), _count(app, ItemSource)
    mailboxes_on_disk.Maildir(scenario.alice).add(_mail("new@elsewhere", FRIEND, [REP], "New", "NEW-PRIVATE"))

    report = sync()

    assert report.stats.skipped == {"unmatched": 1}  # the new mail only
    assert (_count(app, SyncedItem), _count(app, ItemSource)) == (items + 1, sources + 1)
    assert {key: _raw_states(app, key) for key in PURGED_KEYS} == before
    for key in PURGED_KEYS:
        with pytest.raises(BlobMissing):  # not fetched again
            _fresh(app).get(scenario.raws[key])


def test_a_full_resync_leaves_purged_mail_purged_and_the_next_purge_drops_its_bytes_again(  # type: ignore[no-untyped-def]
    scenario: Scenario, sync
) -> None:
    app = scenario.app
    purge_skipped(app, 90, min_age=0)
    before = {key: _raw_states(app, key) for key in PURGED_KEYS}
    counts = (_count(app, SyncedItem), _count(app, ItemSource), _count(app, RawItem), _count(app, Activity))
    with transaction(app.sessions) as session:
        mailboxes.resync_mailbox(session, "alice")

    report = sync()

    assert report.stats.logged == 0 and not report.stats.skipped  # nothing processed again
    assert (_count(app, SyncedItem), _count(app, ItemSource), _count(app, RawItem), _count(app, Activity)) == counts
    assert {key: _raw_states(app, key) for key in PURGED_KEYS} == before
    assert _item(app, "msg:private@elsewhere").skip_reason == PURGED
    # the re-listed messages were fetched and stored again, referenced by nothing: the next purge drops them
    assert _fresh(app).get(scenario.raws["private@elsewhere"])
    again = purge_skipped(app, 90, min_age=0)
    assert again.purged == 0 and again.blobs.freed > 0
    with pytest.raises(BlobMissing):
        _fresh(app).get(scenario.raws["private@elsewhere"])
    assert not _on_disk(app, "PRIVATE-DINNER")


def test_rematching_after_the_sender_becomes_a_contact_skips_purged_mail(scenario: Scenario, crm) -> None:  # type: ignore[no-untyped-def]
    app = scenario.app
    purge_skipped(app, 90, min_age=0)
    with transaction(app.sessions) as session:
        friend = Contact(name="A Friend", account_id=crm["acme"])
        friend.emails.append(ContactEmail(email=FRIEND, position=0))
        session.add(friend)

    stats = rematch(app)

    assert stats.errors == 0, stats.problems
    assert stats.logged == 1  # the young mail from the same sender: its skip is lifted
    assert _item(app, "msg:young@elsewhere").skip_reason is None
    purged = _item(app, "msg:private@elsewhere")  # its bytes are gone: it is not matched again
    assert purged.skip_reason == PURGED
    with app.sessions() as session:
        assert session.scalar(select(Activity.id).where(Activity.item_id == purged.id)) is None
        lines = explain_message(app, session, "private@elsewhere")
    assert "purged" in lines[-1]


def test_reprocessing_never_crashes_on_a_purged_item(scenario: Scenario) -> None:
    app = scenario.app
    purge_skipped(app, 90, min_age=0)
    with transaction(app.sessions) as session:
        # as migration 0014 does: processed copies of skipped items go back to pending — not purged ones
        copies = select(ItemSource.raw_item_id).join(SyncedItem, SyncedItem.id == ItemSource.item_id)
        copies = copies.where(SyncedItem.kind == "email", SyncedItem.skip_reason.is_not(None))
        session.execute(
            update(RawItem)
            .where(RawItem.state == "done", RawItem.id.in_(copies))
            .values(state="pending", processed_at=None)
        )
    assert process_pending(app).quarantined == 0
    assert all(state == PURGED for key in PURGED_KEYS for state, _at in _raw_states(app, key))

    # a purged copy forced back to pending: quarantined with a one-line reason, the run goes on
    with transaction(app.sessions) as session:
        raw_id = session.scalar(select(RawItem.id).where(RawItem.sha256 == scenario.raws["private@elsewhere"]))
        session.execute(update(RawItem).where(RawItem.id == raw_id).values(state="pending", processed_at=None))
    stats = process_pending(app)
    assert stats.quarantined == 1
    with app.sessions() as session:
        reason = session.scalar(select(QuarantineEntry.reason).where(QuarantineEntry.raw_item_id == raw_id))
    assert reason is not None and "missing" in reason
    assert _item(app, "msg:private@elsewhere").skip_reason == PURGED


def test_a_dry_run_changes_nothing_and_says_what_a_run_does(scenario: Scenario) -> None:
    app = scenario.app

    def snapshot() -> tuple[Any, ...]:
        with app.sessions() as session:
            items = session.execute(select(SyncedItem.id, SyncedItem.skip_reason, SyncedItem.facts)).all()
            raws = session.execute(select(RawItem.id, RawItem.state, RawItem.processed_at)).all()
        files = {p: p.read_bytes() for p in app.settings.data_dir.rglob("*") if p.is_file()}
        return sorted(map(tuple, items)), sorted(map(tuple, raws)), files

    before = snapshot()
    preview = purge_skipped(app, 90, min_age=0, dry_run=True)
    assert snapshot() == before
    done = purge_skipped(app, 90, min_age=0)
    assert (preview.purged, preview.copies) == (done.purged, done.copies) == (3, 3)
    expected = {k: v for k, v in done.blobs.as_dict().items() if k not in ("freed", "held", "restored")}
    assert {k: v for k, v in preview.blobs.as_dict().items() if k in expected} == expected


def test_the_retention_counts_from_when_the_mail_was_synced(scenario: Scenario) -> None:
    app = scenario.app
    assert purge_skipped(app, 201, min_age=0).purged == 0  # synced 200 days ago
    assert purge_skipped(app, 199, min_age=0).purged == 3


def test_the_verdict_on_one_candidate() -> None:
    from sync_service.retention import KEPT_SHARED, KEPT_WAITING, KEPT_YOUNG, Candidate, Copy, Verdict, judge

    now = datetime(2026, 11, 25, tzinfo=UTC)
    cutoff = now - timedelta(days=90)
    old, young = now - timedelta(days=100), now - timedelta(days=10)

    def copy(raw_id: int, state: str = "done", at: datetime = old, **flags: bool) -> Copy:
        return Copy(raw_id, f"{raw_id:064x}", state, state != "pending", at, flags.get("quarantined", False),
                    flags.get("shared", False))  # fmt: skip

    def candidate(*copies: Copy, reason: str = "unmatched", made: datetime = old) -> Candidate:
        return Candidate(7, reason, made, "a" * 64, copies)

    assert judge(candidate(copy(1), copy(2, "deleted")), cutoff) == Verdict(True, (1, 2))
    assert judge(candidate(copy(1), copy(2, at=young)), cutoff) == Verdict(False, kept=KEPT_YOUNG)  # newest copy
    assert judge(candidate(copy(1), made=young), cutoff) == Verdict(False, kept=KEPT_YOUNG)
    assert judge(candidate(), cutoff) == Verdict(True, ())  # its mailbox was removed: the facts still go
    assert judge(candidate(copy(1), copy(2, quarantined=True)), cutoff).kept == KEPT_QUARANTINED
    assert judge(candidate(copy(1), copy(2, "quarantined")), cutoff).kept == KEPT_QUARANTINED
    assert judge(candidate(copy(1), copy(2, "pending")), cutoff).kept == KEPT_WAITING
    assert judge(candidate(copy(1, shared=True)), cutoff).kept == KEPT_SHARED
    # purged already: a copy processed since is released whatever its age; the item stays as it is
    assert judge(candidate(copy(1, PURGED), copy(2, at=young), reason=PURGED), cutoff) == Verdict(False, (2,))

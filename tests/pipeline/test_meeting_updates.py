"""Meetings updated inside a processing batch (``BatchCache.known``): the links a person removed, the review
item and the links of the batch's stored meetings are read once per batch, not per update, and kept up to date
through several updates of one meeting in the same batch."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from crm_store.db import transaction
from crm_store.models import Activity, Mailbox, ReviewItem, SyncedItem
from crm_store.models.activities import EXCLUDE_CONTACT
from sync_service.bootstrap import App
from sync_service.connectors.registry import open_connector
from sync_service.exports import export_activities
from sync_service.matching.load import build_index
from sync_service.matching.model import MatchDecision
from sync_service.pipeline.batch import BatchCache
from sync_service.pipeline.context import ProcessContext, ProcessStats
from sync_service.pipeline.fetch import sync_folder
from sync_service.pipeline.items import event_key
from sync_service.pipeline.links import apply_decision
from sync_service.pipeline.manual_links import unlink
from sync_service.pipeline.process import process_pending
from sync_service.values import SyncWindow
from tests.support.builders import REP, ics, maildir, message, vevent

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
START = datetime(2026, 11, 2, 9, tzinfo=UTC)
WINDOW = SyncWindow.around(NOW, 90, 180)
WILE, HANK, MINDY = "wile@acme.example", "hank@globex.example", "mindy@globex.example"


def _invite(n: int, uid: str, summary: str, sequence: int, attendees: tuple[str, ...]) -> bytes:
    at = START + timedelta(hours=n)
    event = vevent(uid, summary, at + timedelta(days=1), attendees=(REP, *attendees), organizer=attendees[0],
                   extra=(f"SEQUENCE:{sequence}",))  # fmt: skip
    return message(f"inv{n}@acme.example", attendees[0], [REP], f"Invitation: {summary}", at=at,
                   attachment=("invite.ics", ics(event, method="REQUEST"), "text/calendar"))  # fmt: skip


def _sync(app: App, box: Path) -> None:
    with app.sessions() as session:
        mailbox_id = session.scalars(select(Mailbox.id)).one()
    sync_folder(app, mailbox_id, open_connector(f"maildir://{box}"), ".")


def _meetings(app: App) -> dict[str, dict[str, Any]]:
    with app.sessions() as session:
        return {a["ical_uid"]: a for a in export_activities(session) if a["type"] == "meeting"}


def _activity_id(app: App, uid: str) -> int:
    with app.sessions() as session:
        item = session.scalars(select(SyncedItem).where(SyncedItem.dedupe_key == event_key(uid, None))).one()
        return session.scalars(select(Activity.id).where(Activity.item_id == item.id)).one()


def test_updates_in_one_batch_keep_exclusions_links_and_review(
    app: App, crm: dict[str, int], add_mailbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app.settings = replace(app.settings, batch_size=4)
    box = maildir(tmp_path / "alice", [
        _invite(0, "evt-a", "Roadmap", 0, (WILE, HANK)),
        _invite(1, "evt-b", "Lamps", 0, (HANK,)),
    ])  # fmt: skip
    add_mailbox("alice", box)
    _sync(app, box)
    assert process_pending(app, now=NOW, parse_processes=1).logged == 2
    before = _meetings(app)
    assert before["evt-a"]["contacts"] == [WILE, HANK]
    assert before["evt-b"]["contacts"] == [HANK]
    with app.sessions() as session:  # Globex has two open opportunities with Hank: a person chooses
        review = session.scalars(select(ReviewItem)).one()
        assert review.activity_id == _activity_id(app, "evt-b") and review.resolved_at is None
    with transaction(app.sessions) as session:  # a person removes Wile from the roadmap meeting
        unlink(session, _activity_id(app, "evt-a"), EXCLUDE_CONTACT, crm["wile"])

    # Four fillers make the first batch (parsed by the run while the parser process starts); the updates
    # come in the second, parsed ahead: evt-b loses Hank, then gets him back, in the same batch.
    fillers = [
        message(f"f{i}@acme.example", WILE, [REP], f"Filler {i}", at=START + timedelta(hours=i)) for i in range(4)
    ]
    maildir(box, [
        *fillers,
        _invite(10, "evt-a", "Roadmap (moved)", 1, (WILE, HANK)),
        _invite(11, "evt-b", "Lamps with Mindy", 1, (MINDY,)),
        _invite(12, "evt-b", "Lamps with both", 2, (MINDY, HANK)),
    ])  # fmt: skip
    _sync(app, box)
    caplog.set_level("INFO", logger="sync_service.pipeline.process")
    reads: list[str] = []

    def seen(conn, cursor, statement, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        flat = " ".join(statement.split())
        found = re.search(
            r"^SELECT .* FROM (review_items|activity_link_exclusions|activity_contacts|activity_accounts)\b", flat
        )
        if found:
            reads.append(found.group(1))

    event.listen(app.engine, "before_cursor_execute", seen)
    stats = process_pending(app, now=NOW, parse_processes=1)
    event.remove(app.engine, "before_cursor_execute", seen)

    assert (stats.logged, stats.updated) == (4, 3)  # every update applied, in order (none skipped as older)
    assert "collided" not in caplog.text and "item by item" not in caplog.text, caplog.text
    # Read with the batch's stored meetings: once each, not once per update.
    assert sorted(reads) == ["activity_accounts", "activity_contacts", "activity_link_exclusions", "review_items"]
    after = _meetings(app)
    assert after["evt-a"]["subject"] == "Roadmap (moved)"
    assert after["evt-a"]["contacts"] == [HANK]  # Wile stays removed
    assert after["evt-b"]["subject"] == "Lamps with both"
    assert sorted(after["evt-b"]["contacts"]) == [HANK, MINDY]
    with app.sessions() as session:
        reviews = session.scalars(select(ReviewItem)).all()
        assert [(r.activity_id, r.resolved_at) for r in reviews] == [(_activity_id(app, "evt-b"), None)]
        assert sorted(reviews[0].candidates) == sorted([crm["lamp"], crm["domes"]])


def test_a_review_deleted_and_opened_again_in_one_batch(
    app: App, crm: dict[str, int], add_mailbox, tmp_path: Path
) -> None:
    # The matching rules seldom do this within one batch (an opportunity once chosen is kept while it is a
    # candidate), so the decisions are given: the review item is deleted, then a new one opened for the
    # same activity — one per activity, so the deletion is written first.
    box = maildir(tmp_path / "alice", [_invite(0, "evt-b", "Lamps", 0, (HANK,))])
    add_mailbox("alice", box)
    _sync(app, box)
    process_pending(app, now=NOW)
    globex = dict(contact_ids=(crm["hank"],), account_ids=(crm["globex"],), primary_account_id=crm["globex"])
    with transaction(app.sessions) as session:
        cache = BatchCache.load(session, [], [], [event_key("evt-b", None)])
        activity = cache.event_activities[event_key("evt-b", None)]
        assert activity is not None and cache.known[activity].review is not None
        index = build_index(session, app.settings.internal_domains)
        ctx = ProcessContext(
            session, app.settings, app.blobs, index, NOW, WINDOW, ProcessStats(), REP, crm["alice"], cache
        )
        apply_decision(ctx, activity, MatchDecision(**globex, opportunity_id=crm["lamp"]))  # type: ignore[arg-type]
        assert cache.known[activity].review is None
        apply_decision(ctx, activity, MatchDecision(**globex, review_candidates=(crm["domes"], crm["rockets"])))  # type: ignore[arg-type]
        session.flush()
    with app.sessions() as session:
        reviews = session.scalars(select(ReviewItem)).all()
        assert [(r.activity_id, r.resolved_at, r.candidates) for r in reviews] == [
            (activity.id, None, [crm["domes"], crm["rockets"]])
        ]

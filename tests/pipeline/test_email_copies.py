"""The same email in several mailboxes (same Message-ID) is one activity (SPEC §3, last paragraph), logged
when any copy would be logged, whichever copy is processed first — across runs, in one batch, in separate
batches of one run — and processing a copy again doubles nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_store.db import transaction
from crm_store.models import (
    Activity,
    ActivityContact,
    Contact,
    ContactEmail,
    Document,
    ItemSource,
    Mailbox,
    RawItem,
    SyncedItem,
)
from sync_service.bootstrap import App
from sync_service.connectors.registry import open_connector
from sync_service.exports import export_activities
from sync_service.pipeline.fetch import sync_folder
from sync_service.pipeline.process import process_pending
from sync_service.pipeline.rematch import rematch
from sync_service.process import service
from tests.support.builders import REP, REP2, ics, maildir, message, vevent
from tests.support.faults import fail_while_writing

AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LIST = "sales@northwind-sales.example"  # the team's list: Bob gets the customer's mail through it


def _bcc_copies(bcc: str = "wile@acme.example") -> tuple[bytes, bytes]:
    """Alice's sent copy lists her Bcc recipient; Bob's received copy does not: to him it is all internal."""
    alices = message("bcc@northwind", REP, [REP2], "Rocket pricing, Bob", headers={"Bcc": bcc})
    bobs = message("bcc@northwind", REP, [REP2], "Rocket pricing, Bob")
    return alices, bobs


def _list_copies() -> tuple[bytes, bytes]:
    """Wile writes to Alice and to the team list; Bob's copy came through the list, which added List-Id."""
    direct = message("list@acme.example", "wile@acme.example", [REP, LIST], "Launch window")
    through_list = message(
        "list@acme.example", "wile@acme.example", [REP, LIST], "Launch window", headers={"List-Id": "<sales.ns>"}
    )
    return direct, through_list


def _mailboxes(add_mailbox, tmp_path: Path, alices: bytes, bobs: bytes) -> None:
    add_mailbox("alice", maildir(tmp_path / "alice", [], sent=[alices]))
    add_mailbox("bob", maildir(tmp_path / "bob", [bobs]), owner=REP2)


def _fetch(app: App, name: str, path: Path) -> None:
    """Store a mailbox's raw items without processing them (the sync stage only)."""
    with app.sessions() as session:
        mailbox_id = session.scalars(select(Mailbox.id).where(Mailbox.name == name)).one()
    connector = open_connector(f"maildir://{path}")
    for folder in connector.folders():
        sync_folder(app, mailbox_id, connector, folder)


def _state(app: App) -> dict[str, Any]:
    """What a person and re-matching see: the activities, the items (skipped or not, with which copy's facts
    and bytes), and how many rows of each kind exist."""
    with app.sessions() as session:
        activities = [
            {k: a[k] for k in ("message_id", "subject", "direction", "account", "opportunity", "contacts", "owner")}
            | {"mailboxes": a["mailboxes"], "documents": sorted(a["documents"])}
            for a in export_activities(session)
        ]
        items = [
            {
                "message_id": item.message_id,
                "skip_reason": item.skip_reason,
                "participants": sorted(p[0] for p in item.facts["participants"]),
                "automated": item.facts["automated_reason"],
                "decision": item.facts["decision"]["skip_reason"],
                "copy": session.scalars(
                    select(Mailbox.name)
                    .join(RawItem, RawItem.mailbox_id == Mailbox.id)
                    .where(RawItem.sha256 == item.sha256)
                ).first(),
            }
            for item in session.scalars(select(SyncedItem).where(SyncedItem.kind == "email"))
        ]
        counts = {
            model.__name__: session.scalar(select(func.count()).select_from(model))
            for model in (Activity, Document, ItemSource, SyncedItem, ActivityContact)
        }
    return {"activities": activities, "items": items, "counts": counts}


BCC_LOGGED = {
    "activities": [
        {
            "message_id": "bcc@northwind",
            "subject": "Rocket pricing, Bob",
            "direction": "outbound",
            "account": "ACME",
            "opportunity": "Rockets",
            "contacts": ["wile@acme.example"],
            "owner": REP,
            "mailboxes": ["alice", "bob"],
            "documents": ["Rocket pricing, Bob.eml"],
        }
    ],
    "items": [
        {
            "message_id": "bcc@northwind",
            "skip_reason": None,
            "participants": [REP2, "wile@acme.example"],  # the sent copy's: a superset
            "automated": None,
            "decision": None,
            "copy": "alice",  # its .eml is Alice's sent copy, whichever came first
        }
    ],
    "counts": {"Activity": 1, "Document": 1, "ItemSource": 2, "SyncedItem": 1, "ActivityContact": 1},
}

LIST_LOGGED = {
    "activities": [
        {
            "message_id": "list@acme.example",
            "subject": "Launch window",
            "direction": "inbound",
            "account": "ACME",
            "opportunity": "Rockets",
            "contacts": ["wile@acme.example"],
            "owner": REP,
            "mailboxes": ["alice", "bob"],
            "documents": ["Launch window.eml"],
        }
    ],
    "items": [
        {
            "message_id": "list@acme.example",
            "skip_reason": None,
            "participants": [REP, LIST],
            "automated": None,  # the direct copy's facts, not the list copy's
            "decision": None,
            "copy": "alice",
        }
    ],
    "counts": {"Activity": 1, "Document": 1, "ItemSource": 2, "SyncedItem": 1, "ActivityContact": 1},
}


@pytest.mark.parametrize("first", ["bob", "alice"])
def test_a_sent_copy_with_bcc_logs_the_email_whichever_mailbox_syncs_first(
    app, crm, add_mailbox, sync, tmp_path: Path, first: str
) -> None:
    _mailboxes(add_mailbox, tmp_path, *_bcc_copies())
    second = "alice" if first == "bob" else "bob"
    earlier = sync(names=[first])
    later = sync(names=[second])
    assert _state(app) == BCC_LOGGED
    if first == "bob":  # Bob's copy alone is internal-only; Alice's then logs the email
        assert (earlier.stats.logged, dict(earlier.stats.skipped)) == (0, {"internal-only": 1})
        assert (later.stats.logged, later.stats.duplicates, dict(later.stats.skipped)) == (1, 0, {})
    else:  # logged first; Bob's skipped-looking copy must not un-log it
        assert (earlier.stats.logged, later.stats.logged, later.stats.duplicates) == (1, 0, 1)


@pytest.mark.parametrize("first", ["bob", "alice"])
def test_a_copy_from_a_mailing_list_does_not_hide_the_direct_copy(
    app, crm, add_mailbox, sync, tmp_path: Path, first: str
) -> None:
    direct, through_list = _list_copies()
    add_mailbox("alice", maildir(tmp_path / "alice", [direct]))
    add_mailbox("bob", maildir(tmp_path / "bob", [through_list]), owner=REP2)
    sync(names=[first])
    sync(names=["alice" if first == "bob" else "bob"])
    assert _state(app) == LIST_LOGGED


@pytest.mark.parametrize(
    ("batch_size", "helpers", "alone"),
    [(500, 0, False), (1, 0, False), (1, 1, False), (500, 0, True)],
    ids=["one-batch", "a-batch-each", "parsed-ahead", "item-by-item"],
)
@pytest.mark.parametrize("first", ["bob", "alice"])
@pytest.mark.parametrize("case", ["bcc", "list"])
def test_copies_processed_in_one_run_give_the_same_outcome_and_counts(
    app,
    crm,
    add_mailbox,
    tmp_path: Path,
    monkeypatch,
    first: str,
    batch_size: int,
    helpers: int,
    alone: bool,
    case: str,
) -> None:
    """Both copies in one processing run: in the same batch (the first copy is still a pending row when the
    second comes), in two batches (the second perhaps parsed ahead by a helper process), or item by item (a
    third email fails while its batch is written). The run counts one logged email and one duplicate, no skip."""
    if case == "bcc":
        alices, bobs = _bcc_copies()
        _mailboxes(add_mailbox, tmp_path, alices, bobs)
        expected = BCC_LOGGED
    else:
        direct, through_list = _list_copies()
        add_mailbox("alice", maildir(tmp_path / "alice", [direct]))
        add_mailbox("bob", maildir(tmp_path / "bob", [through_list]), owner=REP2)
        expected = LIST_LOGGED
    order = [first, "alice" if first == "bob" else "bob"]  # raw item ids, hence processing order
    if alone:
        add_mailbox("other", maildir(tmp_path / "other", [message("x@acme.example", "wile@acme.example", [REP], "X")]))
        order.append("other")
        fail_while_writing(monkeypatch, "X")
    for name in order:
        _fetch(app, name, tmp_path / name)
    app.settings = replace(app.settings, batch_size=batch_size)
    stats = process_pending(app, parse_processes=helpers)
    assert (stats.logged, stats.duplicates, dict(stats.skipped), stats.quarantined) == (1, 1, {}, int(alone))
    assert _state(app) == expected


@pytest.mark.parametrize("first", ["bob", "alice"])
def test_a_skipped_copy_written_before_the_process_engine_ran_is_logged_by_a_later_copy(
    app, crm, add_mailbox, tmp_path: Path, first: str
) -> None:
    """In one batch, an invitation for an opportunity whose process runs is handed to the process engine
    between the two copies: the batch's pending rows (Bob's skipped copy) are written before it."""
    with transaction(app.sessions) as session:
        service.start_process(session, "Corporate sale", AT, opportunity_id=crm["rockets"])
    alices, bobs = _bcc_copies()
    meeting = vevent("evt-copies", "Rocket review", datetime(2026, 11, 20, 9, tzinfo=UTC), attendees=(REP,),
                     organizer="wile@acme.example")  # fmt: skip
    invite = message("inv@acme.example", "wile@acme.example", [REP], "Invitation: Rocket review",
                     attachment=("invite.ics", ics(meeting, method="REQUEST"), "text/calendar"))  # fmt: skip
    _mailboxes(add_mailbox, tmp_path, alices, bobs)
    add_mailbox("calendar", maildir(tmp_path / "calendar", [invite]))
    # Same Date on all three: processed in raw item order, the invitation between the two copies.
    for name in (first, "calendar", "alice" if first == "bob" else "bob"):
        _fetch(app, name, tmp_path / name)
    stats = process_pending(app, now=datetime(2026, 11, 25, tzinfo=UTC))  # the meeting inside the sync window
    assert (stats.logged, stats.duplicates, dict(stats.skipped), stats.quarantined) == (2, 1, {}, 0)
    with app.sessions() as session:
        emails = [a for a in export_activities(session) if a["type"] == "email"]
    assert [(a["message_id"], a["contacts"], a["mailboxes"]) for a in emails] == [
        ("bcc@northwind", ["wile@acme.example"], ["alice", "bob"])
    ]
    state = _state(app)
    assert state["items"] == BCC_LOGGED["items"]
    assert state["counts"]["ItemSource"] == 3  # with the invitation's meeting
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Activity).where(Activity.item_id.is_not(None))) == 2


@pytest.mark.parametrize("first", ["bob", "alice"])
def test_processing_every_copy_again_doubles_nothing(app, crm, add_mailbox, sync, tmp_path: Path, first: str) -> None:
    """At-least-once delivery: the same raw items processed again (each alone, then all in one batch)."""
    _mailboxes(add_mailbox, tmp_path, *_bcc_copies())
    sync(names=[first])
    sync(names=["alice" if first == "bob" else "bob"])
    assert _state(app) == BCC_LOGGED
    with app.sessions() as session:
        raw_ids = list(session.scalars(select(RawItem.id).order_by(RawItem.id)))
    for again in ([raw_ids[0]], [raw_ids[1]], raw_ids):
        with transaction(app.sessions) as session:
            session.execute(RawItem.__table__.update().values(state="pending", processed_at=None)
                            .where(RawItem.id.in_(again)))  # fmt: skip
        stats = process_pending(app)
        assert (stats.logged, stats.duplicates, dict(stats.skipped)) == (0, len(again), {})
        assert _state(app) == BCC_LOGGED


@pytest.mark.parametrize("together", [False, True], ids=["two-runs", "one-batch"])
@pytest.mark.parametrize("first", ["bob", "alice"])
def test_a_skipped_item_keeps_the_copy_re_matching_can_still_log(
    app, crm, add_mailbox, sync, tmp_path: Path, first: str, together: bool
) -> None:
    """Alice Bcc'd someone who is no contact yet: her copy is unmatched, Bob's internal-only. The item keeps
    her copy whichever came first, so once that person is a contact, re-matching logs the email."""
    _mailboxes(add_mailbox, tmp_path, *_bcc_copies("pat@startup.example"))
    order = (first, "alice" if first == "bob" else "bob")
    if together:
        for name in order:
            _fetch(app, name, tmp_path / name)
        stats = process_pending(app)
        assert (stats.logged, stats.duplicates, dict(stats.skipped)) == (0, 1, {"unmatched": 1})
    else:
        for name in order:
            sync(names=[name])
    [item] = _state(app)["items"]
    assert item == {
        "message_id": "bcc@northwind",
        "skip_reason": "unmatched",
        "participants": [REP2, "pat@startup.example"],
        "automated": None,
        "decision": "unmatched",
        "copy": "alice",
    }
    assert _state(app)["counts"]["ItemSource"] == 2
    with transaction(app.sessions) as session:
        session.add(
            Contact(name="Pat Newcomer", account_id=crm["acme"], emails=[ContactEmail(email="pat@startup.example")])
        )
    stats = rematch(app)
    assert stats.logged == 1
    with app.sessions() as session:
        [activity] = export_activities(session)
    assert (activity["contacts"], activity["mailboxes"]) == (["pat@startup.example"], ["alice", "bob"])


def test_migration_0014_logs_an_email_an_older_version_left_skipped(
    app, crm, add_mailbox, sync, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The state an older version left: Bob's copy skipped the email, Alice's was recorded as one more copy and
    nothing else. Upgrading sets those copies back to pending; the next sync logs the email."""
    from alembic import command
    from sqlalchemy import update

    from crm_store.migrate import alembic_config

    _mailboxes(add_mailbox, tmp_path, *_bcc_copies())
    sync(names=["bob"])
    _fetch(app, "alice", tmp_path / "alice")
    with transaction(app.sessions) as session:  # what the older version did with Alice's copy
        item = session.scalars(select(SyncedItem)).one()
        alices = session.scalars(select(RawItem).where(RawItem.state == "pending")).one()
        session.add(ItemSource(item_id=item.id, raw_item_id=alices.id))
        session.execute(update(RawItem).where(RawItem.id == alices.id).values(state="done", processed_at=AT))
    sync()
    assert _state(app)["activities"] == []  # stuck: no version of the code looks at it again by itself
    cfg = alembic_config(app.engine.url.render_as_string(hide_password=False))
    with app.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0013")
        command.upgrade(cfg, "0014")
    sync()
    assert _state(app) == BCC_LOGGED

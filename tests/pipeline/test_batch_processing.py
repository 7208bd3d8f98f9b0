"""The processing stage's batches: one savepoint per batch, few statements per item, and the item-by-item
fallback when an item fails while writing (only that item is quarantined)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select

from crm_store.db import transaction
from crm_store.index_changes import CHANGES_TABLE
from crm_store.models import Activity, ActivityContact, Contact, ContactEmail, Mailbox, QuarantineEntry, RawItem
from sync_service.bootstrap import App
from sync_service.connectors.registry import open_connector
from sync_service.exports import export_activities, export_quarantine
from sync_service.pipeline.fetch import sync_folder
from sync_service.pipeline.process import process_pending
from tests.support.builders import REP, REP2, ics, maildir, message, vevent
from tests.support.faults import fail_while_writing


def _fetch_only(app: App, add_mailbox, box: Path) -> None:
    add_mailbox("alice", box)
    with app.sessions() as session:
        mailbox_id = session.scalars(select(Mailbox.id)).one()
    sync_folder(app, mailbox_id, open_connector(f"maildir://{box}"), ".")


def _another_run_commits_once_the_index_is_built(app: App, monkeypatch: pytest.MonkeyPatch, row: object) -> list[int]:
    """Once the run has built its candidate index, another run commits ``row`` (a new person's contact or
    lead): the run does not know it. Returns the list that then holds the row's id."""
    from sync_service.pipeline import process

    built = process._index
    made: list[int] = []

    def index_then_another_run(*args, **kwargs):  # type: ignore[no-untyped-def]
        index = built(*args, **kwargs)
        if not made:
            with transaction(app.sessions) as other:
                other.add(row)
                other.flush()
                made.append(row.id)  # type: ignore[attr-defined]
        return index

    monkeypatch.setattr(process, "_index", index_then_another_run)
    return made


def _statements(app: App) -> Counter[str]:
    shapes: Counter[str] = Counter()

    def seen(conn, cursor, statement, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        shapes[re.sub(r"\s+", " ", statement).split(" (")[0][:60]] += 1

    event.listen(app.engine, "before_cursor_execute", seen)
    return shapes


def _a_runs_write(sql: str) -> bool:
    """An INSERT, UPDATE or DELETE of a run — not the pruning of the index cache's change record, which is a
    transaction of its own (``pipeline.index_cache``)."""
    return sql.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE") and CHANGES_TABLE not in sql


def test_a_batch_of_new_emails_needs_few_statements_per_item(app, crm, add_mailbox, tmp_path: Path) -> None:
    inbox = [
        message(f"n{i}@acme.example", "wile@acme.example", [REP], f"Specs {i}", attachment=(f"s{i}.pdf", b"%", "x/pdf"))
        for i in range(60)
    ]
    _fetch_only(app, add_mailbox, maildir(tmp_path / "alice", inbox))
    shapes = _statements(app)
    stats = process_pending(app)
    assert stats.logged == 60 and stats.quarantined == 0
    # Per item: a synced item, its source, an activity, its account and contact links, two documents. They are
    # INSERTs (one multi-row statement per table on PostgreSQL; SQLite cannot return many ids in order, so
    # there it is one per row). Everything else is a fixed number of statements per batch, not per item.
    others = {shape: n for shape, n in shapes.items() if not shape.startswith("INSERT")}
    assert sum(others.values()) < 40, others
    assert max(others.values()) <= 2, others
    assert shapes["SAVEPOINT sa_savepoint_1"] <= 2, shapes
    # The raw items' new state: one UPDATE for the batch, not one per flush of dirty objects.
    assert sum(n for shape, n in shapes.items() if shape.startswith("UPDATE raw_items")) == 1, shapes
    with app.sessions() as session:
        raw_states = session.execute(select(RawItem.state, RawItem.processed_at)).all()
    assert len(raw_states) == 60 and all(state == "done" and at is not None for state, at in raw_states)
    with app.sessions() as session:
        acts = export_activities(session)
    assert len(acts) == 60 and all(sorted(a["documents"]) == sorted([f"Specs {a['subject'][6:]}.eml",
                                                                       f"s{a['subject'][6:]}.pdf"]) for a in acts)
    assert {a["opportunity"] for a in acts} == {"Rockets"} and {a["account"] for a in acts} == {"ACME"}


def test_finished_raw_items_are_written_once_per_batch(app, crm, add_mailbox, tmp_path: Path) -> None:
    """An invitation's meeting queries the database (and autoflushes) in the middle of the batch: the raw items
    finished before it are still written with the others, in one UPDATE at the batch's end."""
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    mails = [
        message(f"r{i}@acme.example", "wile@acme.example", [REP], f"Mail {i}", at=start + timedelta(hours=i))
        for i in range(6)
    ]
    meeting = vevent("evt-review", "Rocket review", start + timedelta(days=2), attendees=(REP,),
                     organizer="wile@acme.example")  # fmt: skip
    invite = message("inv@acme.example", "wile@acme.example", [REP], "Invitation: Rocket review",
                     at=start + timedelta(hours=2, minutes=30),
                     attachment=("invite.ics", ics(meeting, method="REQUEST"), "text/calendar"))  # fmt: skip
    _fetch_only(app, add_mailbox, maildir(tmp_path / "alice", [*mails, invite]))
    shapes = _statements(app)
    stats = process_pending(app)
    assert stats.logged == 7 and stats.quarantined == 0  # six emails and the meeting
    assert sum(n for shape, n in shapes.items() if shape.startswith("UPDATE raw_items")) == 1, shapes
    with app.sessions() as session:
        assert Counter(session.scalars(select(RawItem.state))) == {"done": 7}


def test_a_copy_of_a_message_in_the_same_batch_is_a_duplicate(app, crm, add_mailbox, tmp_path: Path) -> None:
    same = message("dup@acme.example", "wile@acme.example", [REP], "Twice")
    _fetch_only(app, add_mailbox, maildir(tmp_path / "alice", [same, same.replace(b"Twice", b"Twice!")]))
    stats = process_pending(app)
    assert (stats.logged, stats.duplicates) == (1, 1)
    with app.sessions() as session:
        assert len(session.scalars(select(Activity)).all()) == 1


def test_a_parse_error_is_quarantined_without_redoing_the_batch(
    app, crm, add_mailbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = maildir(tmp_path / "alice", [message(f"p{i}@acme.example", "wile@acme.example", [REP], "") for i in range(5)])
    (box / "new" / "2.broken").write_bytes(b"Subject: nothing else\r\n\r\n")
    _fetch_only(app, add_mailbox, box)
    caplog.set_level("INFO", logger="sync_service.pipeline.process")
    stats = process_pending(app)
    assert (stats.logged, stats.quarantined) == (5, 1)
    assert "redone item by item" not in caplog.text


def test_an_item_failing_while_writing_sends_the_batch_item_by_item(
    app, crm, add_mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = maildir(tmp_path / "alice", [message(f"w{i}@acme.example", "wile@acme.example", [REP], f"Mail {i}")
                                       for i in range(6)])
    _fetch_only(app, add_mailbox, box)
    heal = fail_while_writing(monkeypatch, "Mail 3")
    stats = process_pending(app)
    assert (stats.logged, stats.quarantined) == (5, 1)
    with app.sessions() as session:
        subjects = sorted(session.scalars(select(Activity.subject)))
        [entry] = session.scalars(select(QuarantineEntry)).all()
        states = Counter(session.scalars(select(RawItem.state)))
    assert subjects == ["Mail 0", "Mail 1", "Mail 2", "Mail 4", "Mail 5"]
    assert entry.reason == "internal error: RuntimeError: disk on fire"
    assert states == {"done": 5, "quarantined": 1}
    heal()
    # Retried once the cause is gone: logged, and the quarantine entry is over.
    with app.sessions() as session:
        session.execute(RawItem.__table__.update().values(state="pending", processed_at=None).where(
            RawItem.state == "quarantined"))
        session.commit()
    again = process_pending(app)
    assert (again.logged, again.quarantined) == (1, 0)
    with app.sessions() as session:
        assert export_quarantine(session) == []
        assert Counter(session.scalars(select(RawItem.state))) == {"done": 6}


def test_a_large_failed_batch_is_redone_in_halves_down_to_a_few_items_alone(
    app, crm, add_mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """100 items, the 71st fails while writing: halves of 50 (the first is written as one batch), the second
    fails again and is halved into 25 + 25, and only the 25 around the bad item go one by one."""
    from sync_service.pipeline import process

    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    box = maildir(tmp_path / "alice", [message(f"h{i}@acme.example", "wile@acme.example", [REP], f"Mail {i}",
                                               at=start + timedelta(minutes=i)) for i in range(100)])  # fmt: skip
    _fetch_only(app, add_mailbox, box)
    fail_while_writing(monkeypatch, "Mail 70")
    alone: list[str] = []
    real = process._process_alone

    def counting(ctx, raw, *args):  # type: ignore[no-untyped-def]
        alone.append(raw.external_id)
        return real(ctx, raw, *args)

    monkeypatch.setattr(process, "_process_alone", counting)
    caplog.set_level("INFO", logger="sync_service.pipeline.process")
    stats = process_pending(app)
    assert (stats.logged, stats.quarantined) == (99, 1)
    assert len(alone) == 25  # items 50-74, not 100
    assert caplog.text.count("redone in two halves") == 2 and caplog.text.count("redone item by item") == 1
    with app.sessions() as session:
        [entry] = session.scalars(select(QuarantineEntry)).all()
        assert entry.reason == "internal error: RuntimeError: disk on fire"
        assert len(set(session.scalars(select(Activity.subject)))) == 99
        assert Counter(session.scalars(select(RawItem.state))) == {"done": 99, "quarantined": 1}


def test_meetings_from_invitations_are_written_with_the_batch(app, crm, add_mailbox, tmp_path: Path) -> None:
    """A new meeting does not flush the batch's rows to look itself up; a later invitation for the same meeting
    in the same batch (an update, then a cancellation) still finds it: one activity, three sources."""
    from sqlalchemy.orm import Session

    from crm_store.models import ItemSource, SyncedItem

    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    mails = [message(f"m{i}@acme.example", "wile@acme.example", [REP], f"Mail {i}", at=start + timedelta(hours=i))
             for i in range(4)]  # fmt: skip
    invites = []
    plan = [("evt-a", 0, "REQUEST", 2), ("evt-b", 0, "REQUEST", 3), ("evt-c", 0, "REQUEST", 4),
            ("evt-a", 1, "REQUEST", 5), ("evt-a", 2, "CANCEL", 5)]  # fmt: skip
    for n, (uid, seq, method, day) in enumerate(plan):
        meeting = vevent(uid, f"Review {uid}", start + timedelta(days=day), attendees=(REP,),
                         organizer="wile@acme.example", extra=(f"SEQUENCE:{seq}",))  # fmt: skip
        invites.append(message(f"i{n}@acme.example", "wile@acme.example", [REP], f"Invitation {uid}",
                               at=start + timedelta(hours=10 + n),
                               attachment=("invite.ics", ics(meeting, method=method), "text/calendar")))  # fmt: skip
    _fetch_only(app, add_mailbox, maildir(tmp_path / "alice", [*mails, *invites[:3], *invites[3:]]))
    flushes: list[int] = []

    def flushed(session: Session, context: object) -> None:
        flushes.append(1)

    event.listen(Session, "after_flush", flushed)
    try:
        stats = process_pending(app)
    finally:
        event.remove(Session, "after_flush", flushed)
    assert stats.quarantined == 0 and stats.logged == 4 + 3 and stats.cancelled == 1
    with app.sessions() as session:
        meetings = {a.subject: a.status for a in session.scalars(select(Activity).where(Activity.type != "email"))}
        assert meetings == {"Review evt-a": "cancelled", "Review evt-b": "completed", "Review evt-c": "completed"}
        item_a = session.scalars(select(SyncedItem).where(SyncedItem.ical_uid == "evt-a")).one()
        assert len(session.scalars(select(ItemSource).where(ItemSource.item_id == item_a.id)).all()) == 3
    # Each new meeting used to flush twice (its lookup, its insert): 14 flushes here. Now only the update and
    # the cancellation of evt-a flush (they look up what the batch wrote), plus the batch's own few.
    assert len(flushes) <= 9, len(flushes)


def test_a_contact_another_run_made_meanwhile_is_used_not_duplicated(
    app, crm, add_mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch inserts the contacts of new people without looking them up first; at its end it finds the one
    another run committed for the same address after this run's index was built, moves its links to that
    contact and drops its own — without redoing the batch."""

    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    meeting = vevent("evt-nb", "Intro", start + timedelta(days=2), attendees=(REP,), organizer="newbie@acme.example")
    invite = message("inv@acme.example", "newbie@acme.example", [REP], "Invitation: Intro", at=start,
                     attachment=("invite.ics", ics(meeting, method="REQUEST"), "text/calendar"))  # fmt: skip
    box = maildir(tmp_path / "alice", [invite, *[message(f"c{i}@acme.example", "newbie@acme.example", [REP],
                                                         f"Hello {i}") for i in range(3)]])  # fmt: skip
    _fetch_only(app, add_mailbox, box)
    contact = Contact(name="Newbie", account_id=crm["acme"], source="sync")
    contact.emails.append(ContactEmail(email="newbie@acme.example", position=0))
    made = _another_run_commits_once_the_index_is_built(app, monkeypatch, contact)
    caplog.set_level("INFO", logger="sync_service.pipeline.process")
    stats = process_pending(app)
    assert (stats.logged, stats.quarantined, stats.contacts_created) == (4, 0, 0)
    assert "another run made a contact for newbie@acme.example" in caplog.text
    assert "collided" not in caplog.text and "item by item" not in caplog.text  # the batch was not redone
    with app.sessions() as session:
        owners = session.scalars(select(ContactEmail.contact_id).where(ContactEmail.email == "newbie@acme.example"))
        assert list(owners) == made
        linked = session.scalars(select(ActivityContact.contact_id)).all()
        assert session.scalars(select(Contact.id).where(Contact.source == "sync")).all() == made  # none of ours
    assert linked == made * 4  # the meeting (an ORM object) and the three emails (rows written in bulk)


def test_a_batch_makes_a_new_persons_contact_once_and_links_it_everywhere(
    app, crm, add_mailbox, tmp_path: Path
) -> None:
    box = maildir(tmp_path / "alice", [message(f"d{i}@acme.example", f"new{i % 2}@acme.example", [REP], f"Hi {i}")
                                       for i in range(6)])
    _fetch_only(app, add_mailbox, box)
    lookups: list[str] = []

    def seen(conn, cursor, statement, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "contact_emails" in statement and "WHERE" in statement and not statement.startswith("INSERT"):
            lookups.append(statement)

    event.listen(app.engine, "before_cursor_execute", seen)
    stats = process_pending(app)
    event.remove(app.engine, "before_cursor_execute", seen)
    assert (stats.logged, stats.contacts_created) == (6, 2)
    with app.sessions() as session:
        rows = session.execute(select(ContactEmail.email, Contact.id, Contact.account_id, Contact.source, Contact.name)
                               .join(Contact).where(ContactEmail.email.like("new%"))).all()
        links = Counter(session.scalars(select(ActivityContact.contact_id)))
    assert sorted((e, a, s, n.lower()) for e, _i, a, s, n in rows) == [
        ("new0@acme.example", crm["acme"], "sync", "new0"), ("new1@acme.example", crm["acme"], "sync", "new1")]
    assert links == {rows[0][1]: 3, rows[1][1]: 3}
    # No lookup per new contact: one check of all of them at the batch's end.
    assert len(lookups) == 1, lookups


def test_a_new_person_met_and_mailed_in_one_batch_is_one_contact(
    app, crm, add_mailbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The meeting (ORM objects, flushed mid-batch) and the emails (rows written at the batch's end) link the
    contact the batch made; on PostgreSQL its rows are written before the flush that links it."""
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    meeting = vevent("evt-new", "Kick-off", start + timedelta(days=2), attendees=(REP,),
                     organizer="newboss@acme.example")  # fmt: skip
    invite = message("inv@acme.example", "newboss@acme.example", [REP], "Invitation: Kick-off", at=start,
                     attachment=("invite.ics", ics(meeting, method="REQUEST"), "text/calendar"))  # fmt: skip
    mails = [message(f"nb{i}@acme.example", "newboss@acme.example", [REP], f"Plan {i}",
                     at=start + timedelta(hours=1 + i)) for i in range(3)]  # fmt: skip
    moved = vevent("evt-new", "Kick-off", start + timedelta(days=3), attendees=(REP,),
                   organizer="newboss@acme.example", extra=("SEQUENCE:1",))  # fmt: skip
    update = message("inv2@acme.example", "newboss@acme.example", [REP], "Updated: Kick-off", at=start + timedelta(
        hours=5), attachment=("invite.ics", ics(moved, method="REQUEST"), "text/calendar"))  # fmt: skip
    # The update flushes the batch's ORM objects (the meeting made before it, with its link to the contact).
    _fetch_only(app, add_mailbox, maildir(tmp_path / "alice", [invite, *mails, update]))
    caplog.set_level("INFO", logger="sync_service.pipeline.process")
    stats = process_pending(app)
    assert (stats.logged, stats.updated, stats.contacts_created, stats.quarantined) == (4, 1, 1, 0)
    assert "collided" not in caplog.text and "item by item" not in caplog.text
    with app.sessions() as session:
        boss = select(ContactEmail.contact_id).where(ContactEmail.email == "newboss@acme.example")
        [contact_id] = session.scalars(boss)
        links = session.execute(select(Activity.type, ActivityContact.contact_id).join(ActivityContact)).all()
    assert sorted(links) == [("email", contact_id)] * 3 + [("meeting", contact_id)]


def test_a_batch_takes_its_new_contacts_locks_after_all_its_writes(
    app, crm, add_mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs sharing mail (a meeting both update, a new person both meet) must not deadlock: a run that
    holds the new contacts' locks must then wait for no other run's rows. So on PostgreSQL the locks are the
    batch's last statement before its commit: no INSERT, UPDATE, DELETE or COPY follows them."""
    from crm_store import bulkload

    if app.engine.dialect.name != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's (SQLite serialises writers)")
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    meeting = vevent("evt-new", "Kick-off", start + timedelta(days=2), attendees=(REP, "wile@acme.example"),
                     organizer="newboss@acme.example")  # fmt: skip
    invite = message("inv@acme.example", "newboss@acme.example", [REP], "Invitation: Kick-off", at=start,
                     attachment=("invite.ics", ics(meeting, method="REQUEST"), "text/calendar"))  # fmt: skip
    mails = [message(f"nb{i}@acme.example", f"new{i}@acme.example", [REP], f"Plan {i}",
                     at=start + timedelta(hours=1 + i)) for i in range(3)]  # fmt: skip
    _fetch_only(app, add_mailbox, maildir(tmp_path / "alice", [invite, *mails]))
    seen: list[str] = []

    def statement(conn, cursor, sql, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "pg_advisory_xact_lock" in sql:
            seen.append("lock")
        elif _a_runs_write(sql):
            seen.append("write")

    copy = bulkload._copy
    monkeypatch.setattr(bulkload, "_copy", lambda *a, **k: seen.append("write") or copy(*a, **k))
    event.listen(app.engine, "before_cursor_execute", statement)
    stats = process_pending(app)
    event.remove(app.engine, "before_cursor_execute", statement)
    assert (stats.logged, stats.contacts_created) == (4, 4)
    # the meeting's lock before any write (nothing to wait for yet), the new contacts' after the last one
    assert seen.count("lock") == 2 and seen[0] == "lock" and "write" in seen, seen
    assert "write" not in seen[len(seen) - seen[::-1].index("lock") :], seen


def _event_lock_counts(app: App, run: Callable[[], object]) -> list[int]:
    """The number of keys of each advisory-lock statement that comes before the batch's first write."""
    counts: list[int] = []
    wrote: list[bool] = []

    def statement(conn, cursor, sql, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "pg_advisory_xact_lock" in sql and not wrote:
            counts.append(len(params[0] if isinstance(params, (list, tuple)) else params["keys"]))
        elif _a_runs_write(sql):
            wrote.append(True)

    event.listen(app.engine, "before_cursor_execute", statement)
    try:
        run()
    finally:
        event.remove(app.engine, "before_cursor_execute", statement)
    return counts


def test_a_batch_locks_its_meetings_by_uid_and_a_large_calendar_not_at_all(
    app, crm, add_mailbox, tmp_path: Path
) -> None:
    """One lock per meeting UID (a weekly series and its occurrences share one); a calendar of more meetings
    than ``EVENT_LOCKS_AT_MOST`` runs without them (PostgreSQL's lock table is shared and small)."""
    from sync_service.pipeline.context import ProcessStats
    from sync_service.pipeline.process import EVENT_LOCKS_AT_MOST

    if app.engine.dialect.name != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's (SQLite serialises writers)")
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    weekly = vevent("evt-weekly", "Weekly sync", start, attendees=(REP,), organizer="wile@acme.example",
                    extra=("RRULE:FREQ=WEEKLY;COUNT=10",))  # fmt: skip
    single = vevent("evt-once", "Demo", start + timedelta(days=1), attendees=(REP,), organizer="wile@acme.example")
    invites = [message(f"inv{i}@acme.example", "wile@acme.example", [REP], f"Invitation {i}", at=start,
                       attachment=("invite.ics", ics(event, method="REQUEST"), "text/calendar"))
               for i, event in enumerate((weekly, single))]  # fmt: skip
    box = maildir(tmp_path / "alice", invites)
    _fetch_only(app, add_mailbox, box)
    assert _event_lock_counts(app, lambda: process_pending(app)) == [2]

    many = [vevent(f"evt-{i}", f"Slot {i}", start + timedelta(hours=i), attendees=("wile@acme.example",))
            for i in range(EVENT_LOCKS_AT_MOST + 1)]  # fmt: skip
    (box / "calendar.ics").write_bytes(ics(*many))
    with app.sessions() as session:
        mailbox_id = session.scalars(select(Mailbox.id)).one()
    sync_folder(app, mailbox_id, open_connector(f"maildir://{box}"), ".")
    stats: list[ProcessStats] = []
    assert _event_lock_counts(app, lambda: stats.append(process_pending(app))) == []
    assert stats[0].logged == EVENT_LOCKS_AT_MOST + 1


def test_a_run_sharing_a_meeting_waits_for_the_other_run_instead_of_colliding(
    app, crm, add_mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Two reps' mailboxes hold invitations to the same meeting. Bob's run has written its batch and not yet
    committed; Alice's run locks the meeting before it reads it, so it waits (on that lock, not on Bob's row),
    then finds Bob's meeting: no collision, no batch redone, one meeting with both invitations as sources."""
    import threading

    from sqlalchemy import text

    from sync_service.pipeline import process
    from sync_service.pipeline.batch import BatchCache

    if app.engine.dialect.name != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's (SQLite serialises writers)")
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    meeting = vevent("evt-shared", "Launch review", start + timedelta(days=2), attendees=(REP, REP2),
                     organizer="wile@acme.example")  # fmt: skip
    for name, owner in (("alice", REP), ("bob", REP2)):
        invite = message(f"inv-{name}@acme.example", "wile@acme.example", [owner], "Invitation: Launch review",
                         at=start, attachment=("invite.ics", ics(meeting, method="REQUEST"), "text/calendar"))
        mails = [message(f"{name}{i}@acme.example", "wile@acme.example", [owner], f"Note {i}",
                         at=start + timedelta(hours=1 + i)) for i in range(3)]  # fmt: skip
        add_mailbox(name, maildir(tmp_path / name, [invite, *mails]), owner)
    with app.sessions() as session:
        ids = dict(session.execute(select(Mailbox.name, Mailbox.id)).all())
    for name in ("alice", "bob"):
        sync_folder(app, ids[name], open_connector(f"maildir://{tmp_path / name}"), ".")

    written, release = threading.Event(), threading.Event()
    real = BatchCache.write_finished

    def bob_pauses_before_commit(self, session, now):  # type: ignore[no-untyped-def]
        real(self, session, now)
        if threading.current_thread().name == "bob":
            written.set()
            assert release.wait(30)

    monkeypatch.setattr(BatchCache, "write_finished", bob_pauses_before_commit)
    caplog.set_level("INFO", logger="sync_service.pipeline.process")
    results: dict[str, process.ProcessStats] = {}

    def run(name: str) -> None:
        results[name] = process.process_pending(app, mailbox_id=ids[name])

    bob = threading.Thread(target=run, args=("bob",), name="bob")
    bob.start()
    assert written.wait(30)
    alice = threading.Thread(target=run, args=("alice",), name="alice")
    alice.start()
    waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    with app.engine.connect() as conn:
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while not conn.execute(text(waiting)).scalar() and datetime.now(UTC) < deadline:
            conn.rollback()
    assert alice.is_alive()  # waiting for the meeting's lock that Bob's batch holds
    release.set()
    bob.join(30)
    alice.join(30)
    assert "collided" not in caplog.text and "redone" not in caplog.text, caplog.text
    assert [results[n].quarantined for n in ("alice", "bob")] == [0, 0]
    with app.sessions() as session:
        meetings = session.scalars(select(Activity).where(Activity.type == "meeting")).all()
        assert len(meetings) == 1 and meetings[0].subject == "Launch review"
        assert len(session.scalars(select(Activity).where(Activity.type == "email")).all()) == 6


def test_item_by_item_each_item_holds_its_contact_locks_alone(
    app, crm, add_mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed batch is done item by item, each item in its own transaction: the lock an item takes on a
    new person's address ends with it, and is not held while the items after it write (another run waiting
    for that lock might hold rows they need)."""
    from sqlalchemy import text

    from sync_service.pipeline import process

    if app.engine.dialect.name != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's (SQLite serialises writers)")
    box = maildir(tmp_path / "alice", [message(f"n{i}@acme.example", f"new{i}@acme.example", [REP], f"Mail {i}")
                                       for i in range(4)])  # fmt: skip
    _fetch_only(app, add_mailbox, box)
    fail_while_writing(monkeypatch, "Mail 3")
    held: list[int] = []
    alone = process._process_alone

    def counting(ctx, *args):  # type: ignore[no-untyped-def]
        mine = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        held.append(ctx.session.scalar(text(mine)))
        return alone(ctx, *args)

    monkeypatch.setattr(process, "_process_alone", counting)
    stats = process_pending(app)
    assert (stats.logged, stats.quarantined, stats.contacts_created) == (3, 1, 3)
    assert held == [0, 0, 0, 0]  # the locks of the items before were released with their commit


def test_a_lead_another_run_made_meanwhile_is_used_not_duplicated(
    app, crm, add_mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Policy ``all``: a batch inserts the lead of an unknown sender without a lookup; at its end (its last
    statements, with the new contacts' locks) it finds the lead another run committed meanwhile, and is redone
    with it."""
    from dataclasses import replace

    from crm_store.models import Lead, LeadEmail

    app.settings = replace(app.settings, auto_create="all")
    box = maildir(tmp_path / "alice", [message(f"l{i}@initech.example", "bill@initech.example", [REP], f"Quote {i}")
                                       for i in range(3)])  # fmt: skip
    _fetch_only(app, add_mailbox, box)
    lead = Lead(name="Bill", company="Initech", origin="sync")
    lead.emails.append(LeadEmail(email="bill@initech.example", position=0))
    made = _another_run_commits_once_the_index_is_built(app, monkeypatch, lead)
    caplog.set_level("INFO", logger="sync_service.pipeline.process")
    seen: list[str] = []

    def statement(conn, cursor, sql, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "pg_advisory_xact_lock" in sql:
            seen.append("lock")
        elif sql.lstrip().upper().startswith("ROLLBACK TO SAVEPOINT"):
            seen.append("rollback")
        elif _a_runs_write(sql):
            seen.append("write")

    event.listen(app.engine, "before_cursor_execute", statement)
    stats = process_pending(app)
    event.remove(app.engine, "before_cursor_execute", statement)
    assert (stats.logged, stats.quarantined, stats.leads_created) == (3, 0, 0)
    assert "another run made a lead for bill@initech.example" in caplog.text
    assert "item by item" not in caplog.text  # the second optimistic pass found it
    with app.sessions() as session:
        assert session.scalars(select(LeadEmail.lead_id).where(LeadEmail.email == "bill@initech.example")).all() == made
        assert session.scalars(select(Activity.lead_id)).all() == made * 3
    if app.engine.dialect.name == "postgresql":  # the first pass locked once, after all its writes, then gave up
        assert seen.count("lock") == 1, seen  # the second found the lead in its index: nothing to lock
        assert seen[seen.index("lock") + 1] == "rollback" and "write" in seen[: seen.index("lock")], seen

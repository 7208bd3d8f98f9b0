"""``rematch(app)`` on its own: thread replay, stable history, never-log, error boundary, batches, idempotence."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import delete, select, update

from crm_store.db import transaction
from crm_store.models import (
    Account,
    AccountDomain,
    Activity,
    Contact,
    ContactEmail,
    NeverLog,
    Opportunity,
    OpportunityParticipant,
    ReviewItem,
    SyncedItem,
)
from sync_service.bootstrap import App
from sync_service.exports import export_activities, export_review
from sync_service.pipeline.rematch import rematch
from sync_service.pipeline.runner import run_once
from tests.support.blobs import lose_blob
from tests.support.builders import REP, message

DAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _sync(app: App) -> None:
    report = run_once(app)
    assert not report.failed


def _opps(app: App) -> dict[str, str | None]:
    with app.sessions() as session:
        return {a["message_id"]: a["opportunity"] for a in export_activities(session)}


def _add_participant(app: App, opportunity: int, contact: int) -> None:
    with transaction(app.sessions) as session:
        session.add(OpportunityParticipant(opportunity_id=opportunity, contact_id=contact))


def _reviews(app: App) -> list[list[str]]:
    with app.sessions() as session:
        return [sorted(str(c["title"]) for c in r["candidates"]) for r in export_review(session)]


def test_a_reply_follows_its_thread_when_the_thread_moves(app, crm, mailbox_of) -> None:  # type: ignore[no-untyped-def]
    first = message("q1@globex", "mindy@globex.example", [REP], "Question", at=DAY)
    reply = message(
        "q2@globex", "mindy@globex.example", [REP], "Re: Question", in_reply_to="q1@globex", at=DAY.replace(day=3)
    )
    mailbox_of([reply, first])
    _sync(app)
    assert _opps(app) == {"q1@globex": None, "q2@globex": None} and len(_reviews(app)) == 2

    _add_participant(app, crm["domes"], crm["mindy"])
    stats = rematch(app)
    assert (stats.examined, stats.relinked, stats.logged) == (2, 2, 0)
    assert _opps(app) == {"q1@globex": "Domes", "q2@globex": "Domes"}  # q2 by rule a, through q1
    assert _reviews(app) == []
    with app.sessions() as session:
        rules = dict(
            session.execute(select(SyncedItem.message_id, SyncedItem.facts["decision"]["rule"].as_string())).all()
        )
    assert rules == {"q1@globex": "participant", "q2@globex": "thread"}


def _outlook(mid: str, sender: str, subject: str, root: bytes, at: datetime, replies: int = 0) -> bytes:
    thread_index = base64.b64encode(root + b"\x01" * 5 * replies).decode()
    return message(mid, sender, [REP], subject, at=at, headers={"Thread-Index": thread_index})


def test_a_conversation_moves_together_and_never_holds_itself_in_place(app, crm, mailbox_of) -> None:  # type: ignore[no-untyped-def]
    root = bytes(range(22))
    mailbox_of(
        [
            _outlook("o1@acme", "road.runner@acme.example", "Anvils", root, DAY),  # new contact; rule d: Rockets
            _outlook("o2@acme", "wile@acme.example", "RE: Anvils", root, DAY.replace(day=3), replies=1),
        ]
    )
    _sync(app)
    assert _opps(app) == {"o1@acme": "Rockets", "o2@acme": "Rockets"}
    with transaction(app.sessions) as session:
        runner = session.scalar(select(ContactEmail.contact_id).where(ContactEmail.email == "road.runner@acme.example"))
        anvils = Opportunity(title="Anvils", account_id=crm["acme"], stage="Qualification", owner_id=crm["alice"])
        anvils.participants.append(OpportunityParticipant(contact_id=runner))
        session.add(anvils)
    rematch(app)
    # o1: rule c now names Anvils (its own conversation id does not pin it); o2 follows its conversation.
    assert _opps(app) == {"o1@acme": "Anvils", "o2@acme": "Anvils"}


def test_history_stands_when_a_deal_closes_or_a_second_one_opens(app, crm, mailbox_of) -> None:  # type: ignore[no-untyped-def]
    mailbox_of([message("w1@acme", "wile@acme.example", [REP], "Specs", at=DAY)])
    _sync(app)
    with transaction(app.sessions) as session:
        session.execute(update(Opportunity).where(Opportunity.id == crm["rockets"]).values(status="won"))
        sequel = Opportunity(title="Rockets II", account_id=crm["acme"], stage="Qualification", owner_id=crm["alice"])
        sequel.participants.append(OpportunityParticipant(contact_id=crm["wile"]))
        session.add(sequel)
    stats = rematch(app)
    assert stats.relinked == 0 and _opps(app) == {"w1@acme": "Rockets"}  # the won deal keeps its mail
    mailbox_of([message("w2@acme", "wile@acme.example", [REP], "Next", at=DAY.replace(day=5))])
    _sync(app)
    assert _opps(app)["w2@acme"] == "Rockets II"


def test_review_items_follow_the_participants(app, crm, mailbox_of) -> None:  # type: ignore[no-untyped-def]
    mailbox_of([message("h1@globex", "hank@globex.example", [REP], "Both?", at=DAY)])
    _sync(app)  # Hank is in Lamps and Domes
    assert _opps(app) == {"h1@globex": None} and _reviews(app) == [["Domes", "Hammock lamps"]]
    with transaction(app.sessions) as session:
        session.execute(
            delete(OpportunityParticipant).where(
                OpportunityParticipant.opportunity_id == crm["domes"], OpportunityParticipant.contact_id == crm["hank"]
            )
        )
    assert rematch(app).relinked == 1
    assert _opps(app) == {"h1@globex": "Hammock lamps"} and _reviews(app) == []
    _add_participant(app, crm["domes"], crm["hank"])  # ambiguous again: the earlier link is still a candidate
    assert rematch(app).relinked == 0
    assert _opps(app) == {"h1@globex": "Hammock lamps"} and _reviews(app) == []
    with app.sessions() as session:
        assert session.scalar(select(ReviewItem.id)) is None


def test_never_log_entries_hold_back_and_release_mail_but_never_delete_activities(app, crm, mailbox_of) -> None:  # type: ignore[no-untyped-def]
    with transaction(app.sessions) as session:
        session.add(NeverLog(value="globex.example"))
    mailbox_of(
        [
            message("n1@globex", "hank@globex.example", [REP], "Private", at=DAY),
            message("n2@acme", "wile@acme.example", [REP], "Logged", at=DAY),
        ]
    )
    _sync(app)
    assert set(_opps(app)) == {"n2@acme"}
    with transaction(app.sessions) as session:
        session.execute(delete(NeverLog))
        session.add(NeverLog(value="wile@acme.example"))
    stats = rematch(app)
    assert stats.logged == 1 and set(_opps(app)) == {"n1@globex", "n2@acme"}  # released; n2 stays
    with app.sessions() as session:
        skipped = session.scalars(select(SyncedItem.skip_reason).where(SyncedItem.skip_reason.is_not(None))).all()
    assert skipped == []


def test_one_broken_item_never_stops_rematching(app, crm, mailbox_of) -> None:  # type: ignore[no-untyped-def]
    mailbox_of([message(f"s{i}@gmail", f"stranger{i}@gmail.com", [REP], f"Hi {i}", at=DAY) for i in range(5)])
    _sync(app)
    assert _opps(app) == {}
    with app.sessions() as session:
        broken = session.scalar(select(SyncedItem).where(SyncedItem.message_id == "s2@gmail"))
        assert broken is not None and broken.sha256
    lose_blob(app, broken.sha256)
    with transaction(app.sessions) as session:
        for i in range(5):
            contact = Contact(name=f"Stranger {i}", account_id=crm["acme"])
            contact.emails.append(ContactEmail(email=f"stranger{i}@gmail.com"))
            session.add(contact)
    app.settings = replace(app.settings, batch_size=2)
    stats = rematch(app)
    assert (stats.examined, stats.logged, stats.errors) == (5, 4, 1)
    assert "item" in stats.problems[0] and "missing" in stats.problems[0]
    assert set(_opps(app)) == {"s0@gmail", "s1@gmail", "s3@gmail", "s4@gmail"}
    with app.sessions() as session:
        assert session.scalar(select(SyncedItem.skip_reason).where(SyncedItem.message_id == "s2@gmail")) == "unmatched"
    assert "1 errors" in stats.summary()


def test_rematching_twice_changes_nothing(app, crm, mailbox_of) -> None:  # type: ignore[no-untyped-def]
    mailbox_of(
        [
            message("i1@acme", "wile@acme.example", [REP], "One", at=DAY),
            message("i2@globex", "mindy@globex.example", [REP], "Two", at=DAY),
            message("i3@gmail", "pal@gmail.com", [REP], "Three", at=DAY),
            message("i4@new", "x@newco.example", [REP], "Four", at=DAY),
        ]
    )
    _sync(app)
    first = rematch(app)
    assert (first.relinked, first.logged, first.errors) == (0, 0, 0) and first.unchanged == 2
    assert dict(first.skipped) == {"unmatched": 2}
    with app.sessions() as session:
        before = {i.id: (i.facts, i.skip_reason, i.updated_at) for i in session.scalars(select(SyncedItem))}
    second = rematch(app)
    assert (second.relinked, second.logged) == (0, 0)
    with app.sessions() as session:
        after = {i.id: (i.facts, i.skip_reason, i.updated_at) for i in session.scalars(select(SyncedItem))}
    assert after == before


def test_a_domain_added_to_an_account_logs_its_mail_and_creates_contacts(app, crm, mailbox_of) -> None:  # type: ignore[no-untyped-def]
    mailbox_of([message("d1@newco", "Nina New <nina@newco.example>", [REP], "Hello from NewCo", at=DAY)])
    _sync(app)
    assert _opps(app) == {}
    with transaction(app.sessions) as session:
        newco = Account(name="NewCo", name_key="newco")
        newco.domains.append(AccountDomain(domain="newco.example"))
        session.add(newco)
    stats = rematch(app)
    assert (stats.logged, stats.contacts_created) == (1, 1)
    with app.sessions() as session:
        [activity] = export_activities(session)
        contact = session.scalar(select(Contact).where(Contact.name == "Nina New"))
    assert activity["account"] == "NewCo" and activity["contacts"] == ["nina@newco.example"]
    assert contact is not None and contact.source == "sync"


def test_activities_are_never_loaded_one_query_per_item(app, crm, mailbox_of) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import event

    mailbox_of([message(f"b{i}@acme", "wile@acme.example", [REP], f"Note {i}", at=DAY) for i in range(30)])
    _sync(app)
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(app.engine, "before_cursor_execute", count)
    try:
        stats = rematch(app)
    finally:
        event.remove(app.engine, "before_cursor_execute", count)
    assert stats.unchanged == 30
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) < 30, len(selects)  # a fixed number per batch, not one per item
    with app.sessions() as session:
        assert session.scalar(select(Activity.id).where(Activity.opportunity_id.is_(None))) is None

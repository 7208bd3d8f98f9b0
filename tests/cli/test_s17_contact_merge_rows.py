"""The contact merge row by row (audit F1): every reference to FROM moves, nothing doubles, a person's links win.

``test_no_reference_to_from_is_left`` reads the foreign keys to ``contacts.id`` from the models, so a table
added later that names contacts fails here until the merge moves it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_store.db import transaction
from crm_store.models import (
    Account,
    Activity,
    ActivityContact,
    ActivityLinkExclusion,
    Base,
    Contact,
    ContactEmail,
    ContactPhone,
    Opportunity,
    OpportunityParticipant,
)
from crm_store.models.activities import EXCLUDE_CONTACT
from sync_service.bootstrap import App
from sync_service.contacts.merge import REFERENCES, apply_merge, prepare_merge
from sync_service.contacts.merge_plan import ContactRows, ExclusionRow, LinkRow, plan_merge


def _contact_foreign_keys() -> set[tuple[str, str]]:
    return {
        (table.name, fk.parent.name)
        for table in Base.metadata.tables.values()
        for fk in table.foreign_keys
        if fk.column.table.name == "contacts" and fk.column.name == "id"
    }


def _world(session: Session) -> dict[str, Any]:
    """INTO and FROM, with every kind of row that names a contact, overlapping where it can."""
    acme = Account(name="Acme", name_key="acme")
    session.add(acme)
    session.flush()
    into = Contact(
        name="John Smith",
        job_title="",
        account_id=None,
        emails=[ContactEmail(email="john@acme.example", position=0), ContactEmail(email="js@acme.example", position=1)],
        phones=[ContactPhone(raw="+1 202 555 0100", e164="+12025550100")],
    )
    source = Contact(
        name="John Smith",
        job_title="CTO",
        account_id=acme.id,
        emails=[
            ContactEmail(email="john.smith@acme.example", position=0),
            ContactEmail(email="js@acme.example", position=1),
        ],
        phones=[
            ContactPhone(raw="(202) 555-0100", e164="+12025550100"),
            ContactPhone(raw="+1 202 555 0199", e164="+12025550199"),
        ],
    )
    session.add_all([into, source])
    renewal, expansion, third = (Opportunity(title=t, stage="Qualification", account_id=acme.id) for t in "REX")
    session.add_all([renewal, expansion, third])
    session.flush()
    renewal.participants.append(OpportunityParticipant(contact_id=into.id, role=None, influence="high"))
    renewal.participants.append(OpportunityParticipant(contact_id=source.id, role="Decision maker"))
    expansion.participants.append(OpportunityParticipant(contact_id=source.id, role="User"))
    activities = {name: Activity(type="email", subject=name) for name in ("both", "from", "into", "m", "x", "xx")}
    session.add_all(activities.values())
    session.flush()
    a = {name: act.id for name, act in activities.items()}
    session.add_all(
        [
            ActivityContact(activity_id=a["both"], contact_id=into.id),
            ActivityContact(activity_id=a["both"], contact_id=source.id),
            ActivityContact(activity_id=a["from"], contact_id=source.id),
            ActivityContact(activity_id=a["into"], contact_id=into.id),
            ActivityContact(activity_id=a["m"], contact_id=source.id, manual=True),  # a person's link …
            ActivityLinkExclusion(activity_id=a["m"], kind=EXCLUDE_CONTACT, target_id=into.id),  # … beats this
            ActivityContact(activity_id=a["x"], contact_id=into.id),  # an automatic link …
            ActivityLinkExclusion(activity_id=a["x"], kind=EXCLUDE_CONTACT, target_id=source.id),  # … yields
            ActivityLinkExclusion(activity_id=a["xx"], kind=EXCLUDE_CONTACT, target_id=source.id),
            ActivityLinkExclusion(activity_id=a["xx"], kind=EXCLUDE_CONTACT, target_id=into.id),
        ]
    )
    session.flush()
    return {"into": into.id, "from": source.id, "acme": acme.id, "a": a, "opps": (renewal.id, expansion.id)}


def _merge(app: App, source: int, into: int) -> None:
    with transaction(app.sessions) as session:
        _, _, plan = prepare_merge(session, str(source), str(into))
        apply_merge(session, plan)


def test_the_merge_knows_every_foreign_key_to_contacts() -> None:
    assert _contact_foreign_keys() == REFERENCES


def test_no_reference_to_from_is_left(app: App) -> None:
    with transaction(app.sessions) as session:
        world = _world(session)
    _merge(app, world["from"], world["into"])
    with app.sessions() as session:
        for table, column in _contact_foreign_keys():
            t = Base.metadata.tables[table]
            left = session.scalar(select(func.count()).select_from(t).where(t.c[column] == world["from"]))
            assert left == 0, (table, column)
        excluded = select(func.count()).where(
            ActivityLinkExclusion.kind == EXCLUDE_CONTACT, ActivityLinkExclusion.target_id == world["from"]
        )
        assert session.scalar(excluded) == 0
        assert session.get(Contact, world["from"]) is None


def test_rows_move_without_doubles_and_a_persons_choices_win(app: App) -> None:
    with transaction(app.sessions) as session:
        world = _world(session)
    _merge(app, world["from"], world["into"])
    into, a = world["into"], world["a"]
    with app.sessions() as session:
        contact = session.get_one(Contact, into)
        assert [e.email for e in contact.emails] == ["john@acme.example", "js@acme.example", "john.smith@acme.example"]
        assert sorted(p.e164 or "" for p in contact.phones) == ["+12025550100", "+12025550199"]
        assert (contact.job_title, contact.account_id, contact.name) == ("CTO", world["acme"], "John Smith")
        links = {
            activity: manual
            for activity, manual in session.execute(
                select(ActivityContact.activity_id, ActivityContact.manual).where(ActivityContact.contact_id == into)
            )
        }
        assert links == {a["both"]: False, a["from"]: False, a["into"]: False, a["m"]: True}
        removals = session.scalars(
            select(ActivityLinkExclusion.activity_id).where(ActivityLinkExclusion.kind == EXCLUDE_CONTACT)
        ).all()
        assert sorted(removals) == sorted([a["x"], a["xx"]])  # one per activity, naming INTO
        roles = session.execute(
            select(OpportunityParticipant.opportunity_id, OpportunityParticipant.role, OpportunityParticipant.influence)
            .where(OpportunityParticipant.contact_id == into)
            .order_by(OpportunityParticipant.opportunity_id)
        ).all()
        renewal, expansion = world["opps"]
        assert [tuple(r) for r in roles] == [(renewal, "Decision maker", "high"), (expansion, "User", None)]


def test_plan_prefers_a_persons_link_then_a_persons_removal() -> None:
    """The per-activity rule on plain rows: activity 1 manual beats removal; 2 removal beats automatic."""
    source = ContactRows(
        2,
        {"name": "J"},
        links=(LinkRow(10, 1, True), LinkRow(11, 3, False)),
        exclusions=(ExclusionRow(20, 2),),
    )
    target = ContactRows(
        1, {"name": "J"}, links=(LinkRow(12, 2, False), LinkRow(13, 3, False)), exclusions=(ExclusionRow(21, 1),)
    )
    plan = plan_merge(source, target)
    assert (plan.links, plan.links_made_manual, plan.links_deleted) == ([10], [], [12])
    assert (plan.exclusions, plan.exclusions_deleted) == ([20], [21])
    assert plan.activities == {1, 2, 3}

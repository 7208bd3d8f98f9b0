"""0017 (audit 17b F2): ``opportunity_participants.imported`` says which participants the opportunities file put
there, the only ones an import removes. Rows stored before: the lead's person on an opportunity made from the
lead (a contact made from the lead, or one with the lead's address) came from the conversion; every other
participant came from an import, the only other way participants were added."""

from __future__ import annotations

from sqlalchemy import insert, text

from crm_store.db import make_engine
from crm_store.migrate import upgrade
from crm_store.models import Contact, ContactEmail, Lead, LeadEmail, Opportunity
from tests.store.test_migrations import _migrated


def test_0017_marks_the_participants_imports_added(database_url: str) -> None:
    engine = make_engine(database_url)
    with _migrated(engine, "0016") as connection:

        def add(table: object, **values: object) -> int:
            return int(connection.execute(insert(table).values(**values).returning(table.c.id)).scalar_one())  # type: ignore[attr-defined]

        lead = add(Lead.__table__, name="Rita Lead", company="Initrode", status="Awaiting sale", origin="import")
        add(LeadEmail.__table__, lead_id=lead, email="rita@initrode.example")
        contacts = {
            name: add(Contact.__table__, name=name, source=source)
            for name, source in (("rita", "import"), ("made", "lead"), ("hank", "import"), ("mindy", "sync"))
        }
        add(ContactEmail.__table__, contact_id=contacts["rita"], email="rita@initrode.example", position=0)
        converted = add(Opportunity.__table__, title="Initrode", stage="Interest verification", lead_id=lead)
        imported = add(Opportunity.__table__, title="Rockets", stage="Presentation")
        for opportunity, name in (
            (converted, "rita"), (converted, "made"), (converted, "hank"), (imported, "rita"), (imported, "mindy"),
        ):  # fmt: skip
            connection.execute(
                text("INSERT INTO opportunity_participants (opportunity_id, contact_id) VALUES (:o, :c)"),
                {"o": opportunity, "c": contacts[name]},
            )
    upgrade(engine)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT o.title, c.name, p.imported FROM opportunity_participants p"
                " JOIN opportunities o ON o.id = p.opportunity_id JOIN contacts c ON c.id = p.contact_id"
            )
        ).all()
    engine.dispose()
    assert sorted((title, name, bool(flag)) for title, name, flag in rows) == [
        ("Initrode", "hank", True),  # an import added Hank to the lead's opportunity
        ("Initrode", "made", False),  # the contact the conversion made of the lead's person
        ("Initrode", "rita", False),  # the lead's person, by address
        ("Rockets", "mindy", True),
        ("Rockets", "rita", True),  # not an opportunity made from a lead
    ]

"""The contacts a processing batch makes for new people (``CRM_AUTO_CREATE``), without a lookup each.

Outside a batch (item by item, re-matching) a new person's contact is looked up under a lock on the address,
then inserted (``links._create_contact``): four statements per contact. A batch instead makes it at once and
checks all of them at its end (``NewContacts.check``), once every other row of the batch is written: under a
lock on each address, taken in order and held to the commit, no other contact may have the address. Another
run making the same contact has then either committed — its row is seen, and the batch moves its links to
that contact and drops its own (``use_theirs``) — or it waits for this batch and finds this contact. A run
holding those locks writes nothing more that could wait for another run, so two runs cannot deadlock on them.
The leads a batch makes (``CRM_AUTO_CREATE=all``, ``links._create_lead``) are locked and checked in the same
statement; a lead another run committed raises ``LeadCollision``, and the batch is redone, finding that lead.

On PostgreSQL a contact costs no statement of its own: its id comes from a pool taken from the table's
sequence (``IdPool``) and its rows are copied with the batch's other new contacts — before the batch's next
ORM flush (a meeting's links may name it), or at the check. Elsewhere (SQLite: a local file, statements are
cheap) it is inserted at once, with its email row.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Executable, Table, bindparam, delete, event, insert, select, update
from sqlalchemy.orm import Session

from crm_store.bulkload import allocate_ids, insert_rows
from crm_store.db import lock_names, one_of
from crm_store.models import ActivityContact, Contact, ContactEmail, LeadEmail, OpportunityParticipant
from sync_service.matching.model import NewContact
from sync_service.parsing.addresses import MAX_NAME_CHARS

ADDRESSES_PER_QUERY = 500
POOL_MAX = 64  # ids taken from the sequence at a time, at most (unused ones are gaps in the ids)


class LeadCollision(Exception):
    """Another run committed a lead for an address this batch made a lead for: the batch is redone (a lead may
    have started a process already, so it is not simply swapped for the other run's)."""


def lead_lock_name(email: str) -> str:
    return f"lead-email:{email}"


@dataclass(frozen=True)
class Collision:
    """Another run committed a contact (``theirs``, of ``account_id``) for an address this batch made one for."""

    email: str
    ours: int
    theirs: int
    account_id: int | None


def lock_name_of(email: str) -> str:
    return f"contact-email:{email}"


def contact_row(new: NewContact) -> dict[str, Any]:
    """The contact's row. Its name is cut to what ``contacts.name`` holds: a display name from an invitation
    or a card can be longer, and PostgreSQL would refuse the whole item (SQLite would store it)."""
    name = (new.name or new.email.partition("@")[0])[:MAX_NAME_CHARS].rstrip()
    return {"name": name, "account_id": new.account_id, "source": "sync"}


def insert_contact(session: Session, new: NewContact) -> int:
    """Insert the contact of ``new`` and its email row now; its id."""
    contact_id = int(session.execute(_inserts()[0], contact_row(new)).scalar_one())
    session.execute(_inserts()[1], {"contact_id": contact_id, "email": new.email})
    return contact_id


@functools.cache
def _inserts() -> tuple[Executable, Executable]:
    """Built once: building a statement per contact costs more than executing it on SQLite."""
    contacts, emails = cast(Table, Contact.__table__), cast(Table, ContactEmail.__table__)
    contact = insert(contacts).values(
        name=bindparam("name"), account_id=bindparam("account_id"), source=bindparam("source")
    )
    email = insert(emails).values(contact_id=bindparam("contact_id"), email=bindparam("email"), position=0)
    return contact.returning(contacts.c.id), email


@dataclass
class IdPool:
    """Contact ids taken from the sequence ahead of need, a few at first, more as a run makes more contacts.
    A run keeps one across its batches; ids a rolled-back batch took are not given back (sequences are not
    transactional): they stay unused, as with any failed INSERT."""

    ids: list[int] = field(default_factory=list)
    taken: int = 0

    def next(self, session: Session) -> int:
        if not self.ids:
            count = min(POOL_MAX, max(4, self.taken))  # doubles as the run goes on
            self.ids = allocate_ids(session, cast(Table, Contact.__table__), count)[::-1]
            self.taken += count
        return self.ids.pop()


@dataclass
class NewContacts:
    pool: IdPool | None = None  # PostgreSQL: ids from here, rows copied later; None: inserted at once
    made: dict[str, int] = field(default_factory=dict)  # address → id of every contact the batch made
    leads: dict[str, int] = field(default_factory=dict)  # address → id of every lead the batch made (inserted at once)
    _rows: list[dict[str, Any]] = field(default_factory=list)  # not written yet (pool only)
    _emails: list[dict[str, Any]] = field(default_factory=list)

    def make(self, session: Session, new: NewContact) -> int:
        """The new contact's id (no lookup: ``check`` follows at the batch's end)."""
        if self.pool is None:
            contact_id = insert_contact(session, new)
        else:
            contact_id = self.pool.next(session)
            self._rows.append({**contact_row(new), "id": contact_id})
            self._emails.append({"contact_id": contact_id, "email": new.email, "position": 0})
        self.made[new.email] = contact_id
        return contact_id

    def made_lead(self, email: str, lead_id: int) -> None:
        """A lead the batch inserted without a lookup (policy ``all``: rare): checked with the contacts."""
        self.leads[email] = lead_id

    def write(self, session: Session) -> None:
        """Write the contacts made since the last write (pool only)."""
        if self._rows:
            rows, emails, self._rows, self._emails = self._rows, self._emails, [], []
            insert_rows(session, Contact, rows)
            insert_rows(session, ContactEmail, emails)

    @contextmanager
    def written_before_flush(self, session: Session) -> Iterator[None]:
        """While the batch runs: write the contacts made so far before each flush of ORM objects, which may
        link them (a meeting's contacts)."""

        def before_flush(flushing: Session, _context: object, _instances: object) -> None:
            self.write(flushing)

        event.listen(session, "before_flush", before_flush)
        try:
            yield
        finally:
            event.remove(session, "before_flush", before_flush)

    def check(self, session: Session) -> list[Collision]:
        """The addresses another run made a contact for, too (see the module docstring); none, mostly."""
        self.write(session)
        if not self.made and not self.leads:
            return []
        addresses = sorted(self.made)
        lock_names(session, [*map(lock_name_of, addresses), *map(lead_lock_name, self.leads)])
        dialect = session.get_bind().dialect.name
        if self.leads:
            with session.no_autoflush:
                emails = sorted(self.leads)
                for email, lead_id in session.execute(
                    select(LeadEmail.email, LeadEmail.lead_id).where(one_of(LeadEmail.email, emails, dialect))
                ):
                    if lead_id != self.leads[email]:
                        raise LeadCollision(f"another run made a lead for {email} (id {lead_id})")
        found: list[Collision] = []
        for start in range(0, len(addresses), ADDRESSES_PER_QUERY):
            chunk = addresses[start : start + ADDRESSES_PER_QUERY]
            with session.no_autoflush:
                rows = session.execute(
                    select(ContactEmail.email, ContactEmail.contact_id, Contact.account_id)
                    .join(Contact, Contact.id == ContactEmail.contact_id)
                    .where(one_of(ContactEmail.email, chunk, dialect))
                )
                for email, contact_id, account_id in rows:
                    if contact_id != self.made[email]:
                        found.append(Collision(email, self.made[email], contact_id, account_id))
        return found

    def use_theirs(self, session: Session, collisions: list[Collision]) -> None:
        """Link the other run's contact wherever the batch linked its own, and drop its own: rows of this
        batch only, which no other run can hold."""
        quiet = {"synchronize_session": False}
        for collision in collisions:
            ours, theirs = collision.ours, collision.theirs
            for table in (ActivityContact, OpportunityParticipant):
                moved = update(table).where(table.contact_id == ours).values(contact_id=theirs)
                session.execute(moved, execution_options=quiet)
            session.execute(delete(ContactEmail).where(ContactEmail.contact_id == ours), execution_options=quiet)
            session.execute(delete(Contact).where(Contact.id == ours), execution_options=quiet)
            self.made[collision.email] = theirs

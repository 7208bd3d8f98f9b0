"""Merging two contacts in the database: read both (``merge_plan.ContactRows``), plan, write, delete FROM.

Everything happens in the caller's transaction, so a merge is whole or nothing; the caller then re-matches
(SPEC §3.7: "a contact, an address" is a CRM change), so mail from FROM's addresses follows INTO's
opportunities. Both contacts' rows are locked first (PostgreSQL), so a sync cannot link FROM meanwhile.

``REFERENCES`` lists every column that holds a contact id: the four foreign keys to ``contacts.id`` and the
link removals (``ActivityLinkExclusion`` of kind contact, which has no foreign key). A test compares it with
the models' foreign keys, so a new one cannot be forgotten here. Review items name opportunities, not
contacts: re-matching derives them again.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from crm_store.models import (
    ActivityContact,
    ActivityLinkExclusion,
    Contact,
    ContactEmail,
    ContactPhone,
    OpportunityParticipant,
)
from crm_store.models.activities import EXCLUDE_CONTACT
from sync_service.contacts.merge_plan import (
    FILLED_FIELDS,
    ContactRows,
    EmailRow,
    ExclusionRow,
    LinkRow,
    MergePlan,
    PhoneRow,
    RoleRow,
    plan_merge,
)
from sync_service.errors import ConfigError

# (table, column) of every foreign key to contacts.id that a merge moves.
REFERENCES = frozenset(
    {
        ("contact_emails", "contact_id"),
        ("contact_phones", "contact_id"),
        ("activity_contacts", "contact_id"),
        ("opportunity_participants", "contact_id"),
    }
)


def find_contact(session: Session, ref: str) -> Contact:
    """A contact by id (as `export contacts` prints it) or by an address that belongs to exactly one contact."""
    ref = ref.strip()
    if ref.isdigit():
        contact = session.get(Contact, int(ref))
        if contact is None:
            raise ConfigError(f"no contact {ref} (see: crm-sync export contacts)")
        return contact
    if "@" not in ref:
        raise ConfigError(f"{ref!r} is neither a contact id nor an e-mail address")
    owners = sorted(set(session.scalars(select(ContactEmail.contact_id).where(ContactEmail.email == ref.lower()))))
    if not owners:
        raise ConfigError(f"no contact has the address {ref.lower()}")
    if len(owners) > 1:
        raise ConfigError(
            f"the address {ref.lower()} belongs to {len(owners)} contacts ({', '.join(map(str, owners))}): give an id"
        )
    return session.get_one(Contact, owners[0])


def prepare_merge(session: Session, source_ref: str, target_ref: str) -> tuple[Contact, Contact, MergePlan]:
    """Find both contacts, lock them and plan the merge (nothing written: `--dry-run` stops here)."""
    source, target = find_contact(session, source_ref), find_contact(session, target_ref)
    if source.id == target.id:
        raise ConfigError(f"cannot merge contact {source.id} into itself")
    session.execute(select(Contact.id).where(Contact.id.in_([source.id, target.id])).with_for_update())
    return source, target, plan_merge(_rows(session, source), _rows(session, target))


def apply_merge(session: Session, plan: MergePlan) -> None:
    """Write the plan, then delete FROM with whatever of it the plan did not move (duplicates)."""
    into, source = plan.target_id, plan.source_id
    if plan.links_deleted:
        session.execute(delete(ActivityContact).where(ActivityContact.id.in_(plan.links_deleted)))
    if plan.exclusions_deleted:
        session.execute(delete(ActivityLinkExclusion).where(ActivityLinkExclusion.id.in_(plan.exclusions_deleted)))
    # FROM's rows that are not moved go first, so that moving the others never meets a unique constraint
    # (an address, an activity or an opportunity both contacts have).
    _delete_unmoved(session, ContactEmail, source, list(plan.emails))
    _delete_unmoved(session, ContactPhone, source, plan.phones)
    _delete_unmoved(session, ActivityContact, source, plan.links)
    _delete_unmoved(session, OpportunityParticipant, source, plan.roles)
    session.execute(
        delete(ActivityLinkExclusion).where(
            ActivityLinkExclusion.kind == EXCLUDE_CONTACT,
            ActivityLinkExclusion.target_id == source,
            ActivityLinkExclusion.id.not_in(plan.exclusions),
        )
    )
    for row_id, position in plan.emails.items():
        session.execute(
            update(ContactEmail).where(ContactEmail.id == row_id).values(contact_id=into, position=position)
        )
    session.execute(update(ContactPhone).where(ContactPhone.contact_id == source).values(contact_id=into))
    session.execute(update(ActivityContact).where(ActivityContact.contact_id == source).values(contact_id=into))
    if plan.links_made_manual:
        session.execute(update(ActivityContact).where(ActivityContact.id.in_(plan.links_made_manual)).values(manual=True))
    session.execute(
        update(ActivityLinkExclusion)
        .where(ActivityLinkExclusion.kind == EXCLUDE_CONTACT, ActivityLinkExclusion.target_id == source)
        .values(target_id=into)
    )
    session.execute(
        update(OpportunityParticipant).where(OpportunityParticipant.contact_id == source).values(contact_id=into)
    )
    for row_id, values in plan.roles_filled.items():
        session.execute(update(OpportunityParticipant).where(OpportunityParticipant.id == row_id).values(**values))
    if plan.fields:
        session.execute(update(Contact).where(Contact.id == into).values(**plan.fields))
    session.execute(delete(Contact).where(Contact.id == source))
    session.expire_all()


def _delete_unmoved(session: Session, model: type, contact_id: int, moved: list[int]) -> None:
    session.execute(delete(model).where(model.contact_id == contact_id, model.id.not_in(moved)))  # type: ignore[attr-defined]


def _rows(session: Session, contact: Contact) -> ContactRows:
    cid = contact.id
    return ContactRows(
        id=cid,
        fields={name: getattr(contact, name) for name in FILLED_FIELDS},
        emails=tuple(
            EmailRow(*row)
            for row in session.execute(
                select(ContactEmail.id, ContactEmail.email, ContactEmail.position).where(ContactEmail.contact_id == cid)
            )
        ),
        phones=tuple(
            PhoneRow(*row)
            for row in session.execute(
                select(ContactPhone.id, ContactPhone.raw, ContactPhone.e164)
                .where(ContactPhone.contact_id == cid)
                .order_by(ContactPhone.id)
            )
        ),
        links=tuple(
            LinkRow(*row)
            for row in session.execute(
                select(ActivityContact.id, ActivityContact.activity_id, ActivityContact.manual).where(
                    ActivityContact.contact_id == cid
                )
            )
        ),
        exclusions=tuple(
            ExclusionRow(*row)
            for row in session.execute(
                select(ActivityLinkExclusion.id, ActivityLinkExclusion.activity_id).where(
                    ActivityLinkExclusion.kind == EXCLUDE_CONTACT, ActivityLinkExclusion.target_id == cid
                )
            )
        ),
        roles=tuple(
            RoleRow(row.id, row.opportunity_id, {"role": row.role, "influence": row.influence, "loyalty": row.loyalty})
            for row in session.execute(
                select(
                    OpportunityParticipant.id,
                    OpportunityParticipant.opportunity_id,
                    OpportunityParticipant.role,
                    OpportunityParticipant.influence,
                    OpportunityParticipant.loyalty,
                ).where(OpportunityParticipant.contact_id == cid)
            )
        ),
    )

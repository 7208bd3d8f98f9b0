"""Imported people → ``Contact`` rows: their account, their identity, create or update.

Account (SPEC §5): the account whose name equals the company (case-insensitive), else the account owning an
email's domain or a parent of it (``eu.acme.com`` → ``acme.com``), never through a public mail provider.

Identity (so that a second import changes nothing):
- a row with emails is the contact having any of them; a row whose addresses belong to two different
  contacts is an error that names the merge (`crm-sync contact merge NEWER OLDER`);
- otherwise the contact of the same name at the same account — for a row with emails only a contact that
  has no email yet (two people may share a name, their addresses tell them apart).
Two rows of one file for the same contact reject the file.

A row whose addresses are all new creates a contact even when a contact of the same name at the same account
exists (a person's changed address looks exactly like a namesake's): the summary then says so, one line each,
with the `crm-sync contact merge` that joins them if they are one person.

Updates only add: non-empty cells overwrite the stored field, new emails go after the existing ones, new
phones are appended; nothing is removed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import Account, AccountDomain, Contact, ContactEmail, ContactPhone
from sync_service.importers.chunks import written
from sync_service.importers.csvfile import SeenRows, at_line
from sync_service.importers.normalize import Phone, clean_text, name_key
from sync_service.importers.report import ImportReport, Outcome, apply_fields, outcome
from sync_service.matching.domains import (
    domain_candidates,
    email_domain,
    is_public_mail_domain,
    normalize_domain,
)


@dataclass(frozen=True, slots=True)
class ContactEntry:
    """One validated person from a CSV row or a vCard."""

    line: int | None  # CSV line; None for a vCard
    where: str  # "line 4" / "card 2 (Jane Doe)", for messages
    name: str  # "" when the row gives no name
    first_name: str
    middle_name: str
    last_name: str
    company: str
    job_title: str
    emails: tuple[str, ...]
    phones: tuple[Phone, ...]


@dataclass(frozen=True, slots=True)
class _Plan:
    entry: ContactEntry
    account_id: int | None
    target: Contact | None  # None: create
    namesakes: tuple[int, ...] = ()  # stored contacts of the same name at the same account (when creating)


@dataclass(slots=True)
class ContactsReport(ImportReport):
    """The counts, and one line per created contact that has a namesake at its account (maybe one person)."""

    namesakes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return "\n".join([ImportReport.summary(self), *self.namesakes])


def store_contacts(session: Session, entries: list[ContactEntry], *, source: str) -> ContactsReport:
    """Check every entry (account, identity, duplicates), then write them all (in chunks: ``chunks``)."""
    plans = _plan(session, entries)
    report = ContactsReport("contacts")
    created: list[tuple[_Plan, Contact]] = []
    for number, plan in enumerate(plans, start=1):
        result, contact = _write(session, plan, source)
        report.count(result)
        if result == "created" and plan.namesakes:
            created.append((plan, contact))
        written(session, number)
    session.flush()
    report.namesakes = [line for plan, contact in created for line in _namesake_lines(session, plan, contact)]
    return report


def _namesake_lines(session: Session, plan: _Plan, contact: Contact) -> list[str]:
    account = session.get_one(Account, plan.account_id).name if plan.account_id is not None else ""
    return [
        f"{plan.entry.where}: created {contact.name} (contact {contact.id}); contact {other} at {account} has the "
        f"same name — if it is the same person: crm-sync contact merge {contact.id} {other}"
        for other in plan.namesakes
    ]


def _merge_commands(owners: Sequence[int]) -> str:
    """The merges that make one contact of ``owners``: each newer one into the oldest."""
    keep, *others = sorted(owners)
    return ", ".join(f"crm-sync contact merge {other} {keep}" for other in others)


class _Accounts:
    """Accounts by name key and by domain, loaded once per import."""

    def __init__(self, session: Session) -> None:
        self.by_name = dict(session.execute(select(Account.name_key, Account.id)).all())
        self.by_domain = {
            normalize_domain(domain): account_id
            for domain, account_id in session.execute(select(AccountDomain.domain, AccountDomain.account_id))
        }

    def account_for(self, company: str, emails: tuple[str, ...]) -> int | None:
        if company and (account_id := self.by_name.get(name_key(company))) is not None:
            return account_id
        for email in emails:
            domain = email_domain(email)
            if is_public_mail_domain(domain):
                continue
            for candidate in domain_candidates(domain):
                if candidate in self.by_domain:
                    return self.by_domain[candidate]
        return None


class _Existing:
    """Stored contacts by (name key, account) — compared in Python: SQLite's lower() is ASCII-only."""

    def __init__(self, session: Session) -> None:
        self._session = session
        with_email = set(session.scalars(select(ContactEmail.contact_id).distinct()))
        self._by_name: dict[tuple[str, int | None], list[tuple[int, bool]]] = defaultdict(list)
        rows = session.execute(select(Contact.id, Contact.name, Contact.account_id).order_by(Contact.id))
        for contact_id, name, account_id in rows:
            self._by_name[(name_key(name), account_id)].append((contact_id, contact_id in with_email))

    def find(self, entry: ContactEntry, account_id: int | None) -> Contact | None:
        if entry.emails:
            owners = self._session.execute(
                select(ContactEmail.contact_id).where(ContactEmail.email.in_(entry.emails)).distinct()
            ).scalars().all()
            if len(owners) > 1:
                raise ValueError(
                    f"its addresses ({', '.join(entry.emails)}) belong to {len(owners)} different contacts; "
                    f"merge them first: {_merge_commands(owners)}"
                )
            if owners:
                return self._session.get(Contact, owners[0])
        if not entry.name:
            return None
        for contact_id, has_email in self._by_name.get((name_key(entry.name), account_id), []):
            if not (entry.emails and has_email):
                return self._session.get(Contact, contact_id)
        return None

    def namesakes(self, entry: ContactEntry, account_id: int | None) -> tuple[int, ...]:
        """The stored contacts a new contact shares its name and account with (none without an account)."""
        if not entry.name or account_id is None:
            return ()
        return tuple(contact_id for contact_id, _ in self._by_name.get((name_key(entry.name), account_id), []))


def _plan(session: Session, entries: list[ContactEntry]) -> list[_Plan]:
    accounts, existing, seen = _Accounts(session), _Existing(session), SeenRows("contact")
    plans = []
    for entry in entries:
        with at_line(entry.line, entry.where):
            account_id = accounts.account_for(entry.company, entry.emails)
            target = existing.find(entry, account_id)
            check, add = _identity_keys(entry, account_id, target)
            seen.check(check)
            seen.add(add, entry.where)
        namesakes = existing.namesakes(entry, account_id) if target is None else ()
        plans.append(_Plan(entry, account_id, target, namesakes))
    return plans


def _identity_keys(
    entry: ContactEntry, account_id: int | None, target: Contact | None
) -> tuple[list[str], list[str]]:
    """(keys that must be new, keys to remember).

    Rows sharing an email or the stored contact clash. A row without email clashes with any row of the same
    name at the same account; two rows with emails and the same name do not (namesakes).
    """
    keys = [f"email:{email}" for email in entry.emails]
    if target is not None:
        keys.append(f"contact:{target.id}")
    named = f"{name_key(entry.name)}|{account_id}" if entry.name else None
    if named is None:
        return keys, keys
    if entry.emails:
        return [*keys, f"bare:{named}"], [*keys, f"name:{named}"]
    return [*keys, f"name:{named}"], [*keys, f"name:{named}", f"bare:{named}"]


def _write(session: Session, plan: _Plan, source: str) -> tuple[Outcome, Contact]:
    entry, contact = plan.entry, plan.target
    if contact is None:
        contact = Contact(
            name=entry.name or entry.emails[0],
            first_name=entry.first_name,
            middle_name=entry.middle_name,
            last_name=entry.last_name,
            company=entry.company,
            job_title=entry.job_title,
            account_id=plan.account_id,
            source=source,
            emails=[ContactEmail(email=email, position=i) for i, email in enumerate(entry.emails)],
            phones=[ContactPhone(kind=p.kind, raw=p.raw, e164=p.e164) for p in entry.phones],
        )
        session.add(contact)
        return "created", contact
    fields: dict[str, object] = {
        "name": entry.name,
        "first_name": entry.first_name,
        "middle_name": entry.middle_name,
        "last_name": entry.last_name,
        "company": entry.company,
        "job_title": entry.job_title,
    }
    changed = apply_fields(contact, {key: value or None for key, value in fields.items()})
    changed |= apply_fields(contact, {"account_id": plan.account_id})
    return outcome(_add_emails(contact, entry.emails) | _add_phones(contact, entry.phones) | changed), contact


def _add_emails(contact: Contact, emails: tuple[str, ...]) -> bool:
    stored = {e.email for e in contact.emails}
    position = max((e.position for e in contact.emails), default=-1) + 1
    added = False
    for email in emails:
        if email not in stored:
            contact.emails.append(ContactEmail(email=email, position=position))
            position += 1
            added = True
    return added


def _add_phones(contact: Contact, phones: tuple[Phone, ...]) -> bool:
    stored = {p.e164 or clean_text(p.raw) for p in contact.phones}
    added = False
    for item in phones:
        if item.key not in stored:
            contact.phones.append(ContactPhone(kind=item.kind, raw=item.raw, e164=item.e164))
            stored.add(item.key)
            added = True
    return added

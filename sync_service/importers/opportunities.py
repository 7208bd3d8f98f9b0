"""Opportunities CSV (SPEC §5): ``Title,Account,Stage,Owner,Contacts,Amount,Close Date,Source``.

- ``Title`` and ``Account`` are required; the account must exist (by name, case-insensitive).
- ``Stage`` is a ``stage`` lookup value; empty means the sale process's start stage for a new opportunity.
  The status is ``open`` unless the stage is a terminal stage of an opportunity process (``Closed won`` →
  ``won``…, read from the process definitions); it is set when the stage is set.
- ``Contacts``: ``;``-separated emails of existing contacts → participants (added, never removed).
- ``Amount``: ``1200.5`` or ``1,200.50``. ``Close Date``: ``YYYY-MM-DD`` or ``DD.MM.YYYY``.
- ``Source``: a ``source`` lookup value or empty. ``Owner``: a rep's email; new reps become users.
- Identity: the same title (case-insensitive) at the same account. Empty cells leave stored values alone.
The importer does not start or move the sales process; that belongs to the process engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import Account, Contact, ContactEmail, Opportunity, OpportunityParticipant
from sync_service.importers.csvfile import Row, SeenRows, at_line, iter_rows
from sync_service.importers.lookups import LookupValues
from sync_service.importers.normalize import (
    amount,
    clean_text,
    day,
    email_address,
    name_key,
    optional_email,
    split_list,
)
from sync_service.importers.report import ImportReport, Outcome, apply_fields, outcome
from sync_service.importers.stages import StageRules
from sync_service.importers.users import Reps

COLUMNS = ("Title", "Account", "Stage", "Owner", "Contacts", "Amount", "Close Date", "Source")


@dataclass(frozen=True, slots=True)
class OpportunityRow:
    line: int
    title: str
    account: Account
    stage: str | None  # None: the cell was empty
    owner: str | None
    contact_ids: tuple[int, ...]
    amount: Decimal | None
    close_date: date | None
    source: str | None


class _Refs:
    """What rows refer to: accounts by name, contacts by email, lookups, stored opportunities."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.stages = LookupValues(session, "stage", "stage")
        self.sources = LookupValues(session, "source", "source")
        self.rules = StageRules(session)
        self._accounts: dict[str, Account | None] = {}
        self.opportunities: dict[tuple[str, int | None], int] = {}
        rows = session.execute(select(Opportunity.id, Opportunity.title, Opportunity.account_id))
        for opp_id, title, account_id in sorted(rows):
            self.opportunities.setdefault((name_key(title), account_id), opp_id)

    def account(self, cell: str) -> Account:
        key = name_key(cell)
        if key not in self._accounts:
            self._accounts[key] = self.session.scalars(select(Account).where(Account.name_key == key)).first()
        found = self._accounts[key]
        if found is None:
            raise ValueError(f"unknown account '{cell}' (import it with the accounts first)")
        return found

    def contact_id(self, email: str, account: Account) -> int:
        """The contact with this address; among several, the one at the opportunity's account first."""
        rows = self.session.execute(
            select(Contact.id, Contact.account_id)
            .join(ContactEmail, ContactEmail.contact_id == Contact.id)
            .where(ContactEmail.email == email)
            .order_by(Contact.id)
        ).all()
        if not rows:
            raise ValueError(f"no contact has the address '{email}' (import the contacts first)")
        return next((cid for cid, account_id in rows if account_id == account.id), rows[0][0])


def import_opportunities(session: Session, path: Path) -> ImportReport:
    """Validate the whole file, then upsert each opportunity. The caller commits or rolls back."""
    refs = _Refs(session)
    rows = _read(refs, path)
    report = ImportReport("opportunities")
    reps = Reps(session)
    for row in rows:
        report.count(_write(refs, row, reps))
    session.flush()
    return report


def _read(refs: _Refs, path: Path) -> list[OpportunityRow]:
    seen = SeenRows("opportunity")
    rows = []
    for line, cells in iter_rows(path, COLUMNS, required=("Title", "Account")):
        with at_line(line):
            row = _parse(line, cells, refs)
            key = [f"{name_key(row.title)}|{row.account.id}"]
            seen.check(key)
            seen.add(key, f"line {line}")
        rows.append(row)
    return rows


def _parse(line: int, cells: Row, refs: _Refs) -> OpportunityRow:
    title = clean_text(cells["Title"])
    if not title:
        raise ValueError("Title is empty")
    if not cells["Account"]:
        raise ValueError("Account is empty")
    account = refs.account(cells["Account"])
    emails = dict.fromkeys(email_address(cell) for cell in split_list(cells["Contacts"]))
    return OpportunityRow(
        line=line,
        title=title,
        account=account,
        stage=refs.stages.resolve(cells["Stage"]),
        owner=optional_email(cells["Owner"]),
        contact_ids=tuple(dict.fromkeys(refs.contact_id(email, account) for email in emails)),
        amount=amount(cells["Amount"]),
        close_date=day(cells["Close Date"]),
        source=refs.sources.resolve(cells["Source"]),
    )


def _write(refs: _Refs, row: OpportunityRow, reps: Reps) -> Outcome:
    owner = reps.get(row.owner)
    opp_id = refs.opportunities.get((name_key(row.title), row.account.id))
    if opp_id is None:
        stage = row.stage or refs.rules.start_stage
        refs.session.add(
            Opportunity(
                title=row.title,
                account=row.account,
                stage=stage,
                status=refs.rules.status_for(stage),
                owner=owner,
                amount=row.amount,
                close_date=row.close_date,
                source=row.source,
                participants=[OpportunityParticipant(contact_id=cid) for cid in row.contact_ids],
            )
        )
        return "created"
    opportunity = refs.session.get_one(Opportunity, opp_id)
    changed = False
    if row.stage is not None and row.stage != opportunity.stage:
        opportunity.stage, opportunity.status = row.stage, refs.rules.status_for(row.stage)
        changed = True
    changed |= apply_fields(
        opportunity,
        {"title": row.title, "owner": owner, "amount": row.amount, "close_date": row.close_date,
         "source": row.source},
    )
    present = {p.contact_id for p in opportunity.participants}
    for contact_id in row.contact_ids:
        if contact_id not in present:
            opportunity.participants.append(OpportunityParticipant(contact_id=contact_id))
            changed = True
    return outcome(changed)

"""Opportunities CSV (SPEC §5): ``Title,Account,Stage,Owner,Contacts,Amount,Close Date,Source``.

- ``Title`` and ``Account`` are required; the account must exist (by name, case-insensitive).
- ``Stage`` is a ``stage`` lookup value; empty means the sale process's start stage for a new opportunity.
  The status is ``open`` unless the stage is a terminal stage of an opportunity process (``Closed won`` →
  ``won``…, read from the process definitions); it is set when the stage is set.
- ``Contacts``: ``;``-separated emails of existing contacts → participants. The cell is the list of the
  participants imports manage (``master_list``): one it no longer lists is removed if an import added it
  (``OpportunityParticipant.imported``; the lead's person that a conversion made a participant stays), and the
  summary names it ("Globex Pilot lost participant mindy@globex.example"). An empty cell leaves them alone.
- ``Amount``: ``1200.5`` or ``1,200.50``. ``Close Date``: ``YYYY-MM-DD`` or ``DD.MM.YYYY``.
- ``Source``: a ``source`` lookup value or empty. ``Owner``: a rep's email; new reps become users.
- Identity: the same title (case-insensitive) at the same account. Empty cells leave stored values alone.
- A new ``Owner`` takes the opportunity's open step activities (planned, made by its process) with it
  (``process.store.follow_owner``); completed ones stay with whoever did them. The summary says so.
- A misspelt column (``Contact`` for ``Contacts``) rejects the file; any other unknown column is ignored and named
  in the summary (``headers``).

Stage: the file's stage is applied only when it differs from the stage the file last set for the opportunity
(``last_import``): the stage the process (or a person) moved the opportunity to since stands against the same
file imported again, while a stage changed in the file is applied. The importer starts no sales process. A
stage applied to an opportunity whose process runs goes through the
process engine exactly as ``crm-sync opportunity stage`` does (``process.service.choose_stage``): that stage's
steps are activated, the unfinished process activities of the stage left are cancelled, and the history records
the transition; the stage must then be one of that process's stages. Without a running process the stage is
only set. A stage that requires closing details — ``Closed lost`` requires a lost reason (SPEC §2) — cannot
be set from this file, which has no column for them: such a row rejects the file (set the stage with
``crm-sync opportunity stage ID "Closed lost" --lost-reason R``). A row whose stage is not applied is not
checked, so importing the same file again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import Account, Contact, ContactEmail, Opportunity, OpportunityParticipant, ProcessDefinition
from sync_service.importers.chunks import written
from sync_service.importers.columns import fit
from sync_service.importers.csvfile import Row, SeenRows, at_line, iter_rows
from sync_service.importers.last_import import APPLY, KEPT, Verdict, last_stage, verdict
from sync_service.importers.lookups import LookupValues
from sync_service.importers.master_list import dropped
from sync_service.importers.normalize import (
    amount,
    clean_text,
    day,
    email_address,
    name_key,
    optional_email,
    split_list,
)
from sync_service.importers.report import ImportReport, apply_fields, outcome
from sync_service.importers.stages import StageRules
from sync_service.importers.users import Reps
from sync_service.process.definition import Process
from sync_service.process.errors import ProcessError
from sync_service.process.model import Closing
from sync_service.process.store import OPPORTUNITY, Subject, follow_owner, parsed_process

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
        self._processes: dict[int, Process] = {}
        self.opportunities: dict[tuple[str, int | None], int] = {}
        self._last: dict[tuple[int, str], str] = {}  # (id, the row's stage) → the stage the file last set
        rows = session.execute(select(Opportunity.id, Opportunity.title, Opportunity.account_id))
        for opp_id, title, account_id in sorted(rows, key=lambda r: r[0]):
            self.opportunities.setdefault((name_key(title), account_id), opp_id)

    def stage_verdict(self, opportunity: Opportunity, stage: str) -> Verdict:
        """What the row's ``stage`` does to the stored one (``last_import``)."""
        key = (opportunity.id, stage)
        if key not in self._last:
            self._last[key] = last_stage(self.session, opportunity, stage)
        return verdict(stage, opportunity.stage, self._last[key])

    def process(self, process_id: int) -> Process:
        """The running process's definition (raises ``ValueError`` when it cannot be read)."""
        if process_id not in self._processes:
            try:
                self._processes[process_id] = parsed_process(
                    self.session.get_one(ProcessDefinition, process_id).definition
                )
            except ProcessError as error:
                raise ValueError(f"the opportunity's process cannot be read: {error}") from None
        return self._processes[process_id]

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


def import_opportunities(session: Session, path: Path, *, now: datetime | None = None) -> ImportReport:
    """Validate the whole file, then upsert each opportunity. The caller commits or rolls back. ``now``: when
    a stage change by the file happens for a running process (its history's time)."""
    refs = _Refs(session)
    rows, ignored = _read(refs, path)
    report = ImportReport("opportunities", ignored_columns=ignored)
    reps = Reps(session)
    when = now or datetime.now(UTC)
    for number, row in enumerate(rows, start=1):
        _write(refs, row, reps, when, report)
        written(session, number)
    session.flush()
    return report


def _read(refs: _Refs, path: Path) -> tuple[list[OpportunityRow], tuple[str, ...]]:
    """The file's rows, checked, and the columns it has that are none of ``COLUMNS``."""
    seen = SeenRows("opportunity")
    rows = []
    found = iter_rows(path, COLUMNS, required=("Title", "Account"), lookalikes=True)
    for line, cells in found:
        with at_line(line):
            row = _parse(line, cells, refs)
            _check_stage(refs, row, refs.opportunities.get((name_key(row.title), row.account.id)))
            key = [f"{name_key(row.title)}|{row.account.id}"]
            seen.check(key)
            seen.add(key, f"line {line}")
        rows.append(row)
    return rows, found.ignored


def _parse(line: int, cells: Row, refs: _Refs) -> OpportunityRow:
    title = fit("Title", clean_text(cells["Title"]), Opportunity.title)
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


def _check_stage(refs: _Refs, row: OpportunityRow, opp_id: int | None) -> None:
    """The stage the row sets (a new opportunity's, or a change it applies) must be one a CSV row can set: one
    of the running process's stages, and none that requires closing details the file cannot carry."""
    process = None
    if opp_id is None:
        stage = row.stage or refs.rules.start_stage
    else:
        stored = refs.session.get_one(Opportunity, opp_id)
        if row.stage is None or refs.stage_verdict(stored, row.stage) != APPLY:
            return  # the stage stays: nothing happens
        stage = row.stage
        process = refs.process(stored.process_id) if stored.process_id is not None else None
    if process is not None:
        name = process.canonical_stage(stage)
        if name is None:
            stages = ", ".join(process.stage_names)
            raise ValueError(f"'{stage}' is not a stage of the {process.name} process it runs (one of: {stages})")
        terminal = process.terminal(name)
        requires = terminal.requires if terminal is not None else ()
    else:
        requires = refs.rules.requires(stage)
    if requires:
        field = requires[0]
        raise ValueError(
            f"'{stage}' requires a {field.replace('_', ' ')}, which the opportunities CSV has no column for "
            f"(set the stage with: crm-sync opportunity stage ID \"{stage}\" --{field.replace('_', '-')} R)"
        )


def _write(refs: _Refs, row: OpportunityRow, reps: Reps, now: datetime, report: ImportReport) -> None:
    owner = reps.get(row.owner)
    opp_id = refs.opportunities.get((name_key(row.title), row.account.id))
    if opp_id is None:
        stage = row.stage or refs.rules.start_stage
        refs.session.add(
            Opportunity(
                title=row.title,
                account=row.account,
                stage=stage,
                imported_stage=stage,
                status=refs.rules.status_for(stage),
                owner=owner,
                amount=row.amount,
                close_date=row.close_date,
                source=row.source,
                participants=[OpportunityParticipant(contact_id=cid, imported=True) for cid in row.contact_ids],
            )
        )
        report.count("created")
        return
    opportunity = refs.session.get_one(Opportunity, opp_id)
    owner_before = opportunity.owner
    changed = apply_fields(
        opportunity,
        {"title": row.title, "owner": owner, "amount": row.amount, "close_date": row.close_date,
         "source": row.source},
    )
    if owner is not None and owner is not owner_before:
        moved = follow_owner(refs.session, Subject(OPPORTUNITY, opportunity))
        if moved:
            steps = "open step activity" if moved == 1 else "open step activities"
            report.notes.append(f"{opportunity.title}: {moved} {steps} moved to the new owner {owner.email}")
    changed = _set_participants(opportunity, row, report) or changed
    # The stage last: the new stage's step activities go to the owner (and participants) the row just set.
    if row.stage is not None:
        decided = refs.stage_verdict(opportunity, row.stage)
        if decided == APPLY:
            if opportunity.process_id is not None:
                _choose_stage(refs.session, row, opportunity, now)
            else:
                opportunity.stage, opportunity.status = row.stage, refs.rules.status_for(row.stage)
            changed = True
        if decided == KEPT:
            report.kept += 1
        if opportunity.imported_stage != row.stage:
            opportunity.imported_stage = row.stage  # bookkeeping: not a change the summary counts
    report.count(outcome(changed))


def _set_participants(opportunity: Opportunity, row: OpportunityRow, report: ImportReport) -> bool:
    """The row's Contacts cell as the imported participants: the ones it no longer lists go (named in the
    summary), the new ones come (marked ``imported``). True when anything changed."""
    present = {p.contact_id: p for p in opportunity.participants}
    gone = dropped(present, row.contact_ids, lambda contact_id: present[contact_id].imported)
    for contact_id in gone:
        participant = present[contact_id]
        contact = participant.contact
        report.notes.append(f"{opportunity.title} lost participant {contact.primary_email or contact.name}")
        opportunity.participants.remove(participant)
    added = [cid for cid in row.contact_ids if cid not in present]
    opportunity.participants.extend(OpportunityParticipant(contact_id=cid, imported=True) for cid in added)
    return bool(gone or added)


def _choose_stage(session: Session, row: OpportunityRow, opportunity: Opportunity, now: datetime) -> None:
    """A new stage for a running process: the engine's stage change, as ``crm-sync opportunity stage``."""
    from sync_service.process import service  # it imports the importers' lookups: loaded when needed

    with at_line(row.line):
        try:
            service.choose_stage(session, opportunity.id, row.stage or opportunity.stage, Closing(), now)
        except ProcessError as error:  # checked while reading the file; a concurrent edit of the process
            raise ValueError(str(error)) from None

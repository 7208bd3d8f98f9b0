"""Leads CSV (SPEC §5): ``Name,Company,Email,Phone,Status,Source,Owner``.

- ``Name`` is required; ``Email`` is optional but must be an address when given; ``Phone`` is kept as
  written plus its E.164 form.
- ``Status`` is a ``lead_status`` lookup value (any case, stored in the lookup's spelling); empty means
  ``Initial Lead`` for a new lead. ``Source`` is a ``source`` lookup value or empty.
- ``Owner``: a rep's email; the rep becomes a user when new.
- Identity: the lead having the email; else the lead of the same name and company — for a row with an email
  only a lead that has no email yet, for a row without one preferably a lead without one. Two rows for the
  same lead reject the file.
- Updates only add or overwrite with non-empty cells.
- ``Status`` is applied only when it differs from the status the file last set for the lead (``last_import``):
  the status the Lead management process (or a person) set since stands against the same file imported again,
  while a status changed in the file is applied.
- A status that starts an opportunity process (``Awaiting sale`` starts the Corporate sale, SPEC §2) starts it
  exactly as ``crm-sync lead status`` does (``process.service.lead_status_changed``): for a new lead imported
  with it, and for a lead whose status the file changes to it — not when the status is already stored, so
  importing the same file again starts nothing (nor when the lead already has an open opportunity).
- A misspelt column (``E-mail`` for ``Email``, ``Phones``) rejects the file; any other unknown column is ignored
  and named in the summary (``headers``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import Lead, LeadEmail, LeadPhone
from sync_service.importers.chunks import written
from sync_service.importers.columns import fit
from sync_service.importers.csvfile import Row, SeenRows, at_line, iter_rows
from sync_service.importers.last_import import APPLY, KEPT, last_status, verdict
from sync_service.importers.lookups import LookupValues
from sync_service.importers.normalize import Phone, clean_text, name_key, optional_email, phone
from sync_service.importers.report import ImportReport, apply_fields, outcome
from sync_service.importers.users import Reps
from sync_service.process.store import LEAD, Subject, follow_owner

COLUMNS = ("Name", "Company", "Email", "Phone", "Status", "Source", "Owner")
DEFAULT_STATUS = "Initial Lead"


@dataclass(frozen=True, slots=True)
class LeadRow:
    line: int
    name: str
    company: str
    email: str | None
    phone: Phone | None
    status: str | None  # None: the cell was empty
    source: str | None
    owner: str | None
    target: Lead | None  # the stored lead this row updates; None: create


def import_leads(
    session: Session, path: Path, *, default_region: str = "US", now: datetime | None = None
) -> ImportReport:
    """Validate the whole file, then upsert each lead. The caller commits or rolls back. ``now``: when a
    status that starts a sale is set (the started process's time)."""
    rows, ignored = _read(session, path, default_region)
    report = ImportReport("leads", ignored_columns=ignored)
    reps = Reps(session)
    starting = _starting_statuses(session)
    when = now or datetime.now(UTC)
    for number, row in enumerate(rows, start=1):
        lead, status = _write(session, row, reps, report)
        if status is not None and status.casefold() in starting:
            with at_line(row.line):
                _status_changed(session, lead, status, when)
        written(session, number)
    session.flush()
    return report


def _starting_statuses(session: Session) -> frozenset[str]:
    from sync_service.process.service import starting_lead_statuses  # it imports the importers' lookups

    return starting_lead_statuses(session)


def _status_changed(session: Session, lead: Lead, status: str, now: datetime) -> None:
    """What ``crm-sync lead status`` does after setting the status: start the sale it starts."""
    from sync_service.process import service
    from sync_service.process.errors import ProcessError

    session.flush()  # a new lead gets its id
    try:
        service.lead_status_changed(session, lead, status, now, automatic=False)
    except ProcessError as error:  # e.g. an admin's edit broke the process's definition: the file is rejected
        raise ValueError(f"{status!r} starts a process that cannot run: {error}") from None


def _read(session: Session, path: Path, region: str) -> tuple[list[LeadRow], tuple[str, ...]]:
    """The file's rows, checked, and the columns it has that are none of ``COLUMNS``."""
    statuses = LookupValues(session, "lead_status", "lead status")
    sources = LookupValues(session, "source", "source")
    existing = _Existing(session)
    seen = SeenRows("lead")
    rows = []
    found = iter_rows(path, COLUMNS, required=("Name",), lookalikes=True)
    for line, cells in found:
        with at_line(line):
            row = _parse(line, cells, region, statuses, sources)
            row = replace(row, target=existing.find(row))
            check, add = _identity_keys(row)
            seen.check(check)
            seen.add(add, f"line {line}")
        rows.append(row)
    return rows, found.ignored


def _parse(line: int, cells: Row, region: str, statuses: LookupValues, sources: LookupValues) -> LeadRow:
    name = fit("Name", clean_text(cells["Name"]), Lead.name)
    if not name:
        raise ValueError("Name is empty")
    return LeadRow(
        line=line,
        name=name,
        company=fit("Company", clean_text(cells["Company"]), Lead.company),
        email=optional_email(cells["Email"]),
        phone=phone("other", cells["Phone"], region) if cells["Phone"] else None,
        status=statuses.resolve(cells["Status"]),
        source=sources.resolve(cells["Source"]),
        owner=optional_email(cells["Owner"]),
        target=None,
    )


class _Existing:
    """Stored leads by (name, company) key — compared in Python: SQLite's lower() is ASCII-only."""

    def __init__(self, session: Session) -> None:
        self._session = session
        with_email = set(session.scalars(select(LeadEmail.lead_id).distinct()))
        self._by_name: dict[str, list[tuple[int, bool]]] = defaultdict(list)
        for lead_id, name, company in session.execute(
            select(Lead.id, Lead.name, Lead.company).order_by(Lead.id)
        ):
            self._by_name[_name_company(name, company)].append((lead_id, lead_id in with_email))

    def find(self, row: LeadRow) -> Lead | None:
        if row.email:
            lead_id = self._session.scalars(
                select(LeadEmail.lead_id).where(LeadEmail.email == row.email).order_by(LeadEmail.lead_id)
            ).first()
            if lead_id is not None:
                return self._session.get(Lead, lead_id)
        named = self._by_name.get(_name_company(row.name, row.company), [])
        bare = [lead_id for lead_id, has_email in named if not has_email]
        # A row without an email prefers a lead without one too: that is the lead such a row creates, so the same
        # file imported again finds it again (even when another row renamed a lead with an email to this name).
        chosen = bare if row.email else bare or [lead_id for lead_id, _ in named]
        return self._session.get(Lead, chosen[0]) if chosen else None


def _name_company(name: str, company: str) -> str:
    return f"{name_key(name)}|{name_key(company)}"


def _identity_keys(row: LeadRow) -> tuple[list[str], list[str]]:
    """(keys that must be new, keys to remember): a row without email clashes with any same-named row."""
    same = [f"lead:{row.target.id}"] if row.target is not None else []
    named = _name_company(row.name, row.company)
    if row.email:
        return [f"email:{row.email}", f"bare:{named}", *same], [f"email:{row.email}", f"name:{named}", *same]
    return [f"name:{named}", *same], [f"name:{named}", f"bare:{named}", *same]


def _write(session: Session, row: LeadRow, reps: Reps, report: ImportReport) -> tuple[Lead, str | None]:
    """(the lead, its new status when the row set or changed it); counts the row in ``report``."""
    owner = reps.get(row.owner)
    lead = row.target
    if lead is None:
        status = row.status or DEFAULT_STATUS
        lead = Lead(
            name=row.name,
            company=row.company,
            status=status,
            imported_status=status,
            source=row.source,
            owner=owner,
            origin="import",
            emails=[LeadEmail(email=row.email, position=0)] if row.email else [],
            phones=[LeadPhone(raw=row.phone.raw, e164=row.phone.e164)] if row.phone else [],
        )
        session.add(lead)
        report.count("created")
        return lead, lead.status
    new_status = _status(session, lead, row.status, report)
    owner_before = lead.owner
    changed = apply_fields(
        lead,
        {"name": row.name, "company": row.company or None, "status": new_status, "source": row.source,
         "owner": owner},
    )
    if owner is not None and owner is not owner_before:  # its open step activities follow (as opportunities')
        moved = follow_owner(session, Subject(LEAD, lead))
        if moved:
            steps = "open step activity" if moved == 1 else "open step activities"
            report.notes.append(f"{lead.name}: {moved} {steps} moved to the new owner {owner.email}")
    if row.email and row.email not in {e.email for e in lead.emails}:
        position = max((e.position for e in lead.emails), default=-1) + 1
        lead.emails.append(LeadEmail(email=row.email, position=position))
        changed = True
    if row.phone and row.phone.key not in {p.e164 or clean_text(p.raw) for p in lead.phones}:
        lead.phones.append(LeadPhone(raw=row.phone.raw, e164=row.phone.e164))
        changed = True
    report.count(outcome(changed))
    return lead, new_status


def _status(session: Session, lead: Lead, status: str | None, report: ImportReport) -> str | None:
    """The status the row sets on the stored ``lead`` (``None``: it stays), and what the file set remembered."""
    if status is None:
        return None
    decided = verdict(status, lead.status, last_status(session, lead, status))
    if decided == KEPT:
        report.kept += 1
    if lead.imported_status != status:
        lead.imported_status = status  # bookkeeping: not a change the summary counts
    return status if decided == APPLY else None

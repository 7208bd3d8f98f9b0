"""Process use cases for the CLI, the CSV importers and the sync pipeline. Each runs inside the caller's
transaction.

Every change goes through the pure engine: load the subject's state, handle one event, apply the effects.
A lead status that starts a process (``start_on_lead_status``, e.g. ``Awaiting sale``) creates an opportunity
for the lead and starts that process, whether a person set the status (``lead status``, a leads CSV) or a
lead-process step did; a stage set by hand (``opportunity stage``, an opportunities CSV) is ``choose_stage``.
A synced activity advances each of its processes in a savepoint of its own; what fails is quarantined and
tried again (``process.failures``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_store.models import (
    Account,
    Activity,
    Contact,
    ContactEmail,
    ContactPhone,
    Lead,
    LeadEmail,
    Opportunity,
    OpportunityParticipant,
    ProcessDefinition,
    QuarantineEntry,
)
from sync_service.importers.lookups import LookupValues
from sync_service.importers.normalize import name_key
from sync_service.importers.users import Reps
from sync_service.process import failures, store
from sync_service.process.definition import PLURALS, Process
from sync_service.process.engine import handle, satisfied_step
from sync_service.process.errors import ProcessError
from sync_service.process.model import (
    OPEN,
    PLANNED,
    ActivitySynced,
    CancelByHand,
    ChooseStage,
    Closing,
    CompleteByHand,
    Event,
    Start,
    Transition,
)
from sync_service.process.satisfy import may_satisfy
from sync_service.process.store import LEAD, OPPORTUNITY, Subject

log = logging.getLogger(__name__)
CHUNK = 500


@dataclass(frozen=True)
class NewOpportunity:
    title: str
    account: str
    owner: str | None = None  # a rep's email; default: the account's owner


def _run(
    session: Session,
    subject: Subject,
    definition: ProcessDefinition,
    process: Process,
    event: Event,
    now: datetime,
    *,
    automatic: bool,
) -> Transition:
    store.lock(session, subject)
    transition = handle(process, store.load_state(session, subject, process), event)
    for status in store.apply(session, subject, definition, transition, now):
        assert isinstance(subject.row, Lead)
        lead_status_changed(session, subject.row, status, now, automatic=automatic)
    return transition


# -- starting ----------------------------------------------------------------------------------------------


def start_process(
    session: Session,
    name: str,
    now: datetime,
    *,
    opportunity_id: int | None = None,
    lead_id: int | None = None,
    new: NewOpportunity | None = None,
) -> Subject:
    """Start ``name`` for an existing opportunity (at its current stage), a new one, or a lead."""
    definition, process = store.process_named(session, name)
    wanted = LEAD if lead_id is not None else OPPORTUNITY
    if process.applies_to != wanted:
        raise ProcessError(f"{process.name} runs for {PLURALS[process.applies_to]}, not for {PLURALS[wanted]}")
    if lead_id is not None:
        subject, event = store.lead(session, lead_id), Start(now, count_history=True)
    elif opportunity_id is not None:
        subject = store.opportunity(session, opportunity_id)
        event = Start(now, stage=subject.stage, count_history=True)
    elif new is not None:
        subject, event = Subject(OPPORTUNITY, _new_opportunity(session, new, process)), Start(now)
    else:
        raise ProcessError("say what to start the process for: an opportunity, a new opportunity or a lead")
    _run(session, subject, definition, process, event, now, automatic=False)
    return subject


def start_for_open_opportunities(session: Session, name: str, now: datetime) -> list[Subject]:
    """Start ``name`` for every open opportunity that runs no process and whose stage is one of its stages,
    each at its current stage (what the demo does after importing opportunities)."""
    definition, process = store.process_named(session, name)
    stages = {s.name for s in process.stages}
    started = []
    rows = session.scalars(
        select(Opportunity)
        .where(Opportunity.process_id.is_(None), Opportunity.status == OPEN, Opportunity.stage.in_(stages))
        .order_by(Opportunity.id)
    ).all()
    for row in rows:
        subject = Subject(OPPORTUNITY, row)
        event = Start(now, stage=row.stage, count_history=True)
        _run(session, subject, definition, process, event, now, automatic=False)
        started.append(subject)
    return started


def _new_opportunity(session: Session, new: NewOpportunity, process: Process) -> Opportunity:
    if not new.title.strip():
        raise ProcessError("the new opportunity's title is empty")
    account = session.scalars(select(Account).where(Account.name_key == name_key(new.account))).first()
    if account is None:
        raise ProcessError(f"no account named {new.account!r}")
    owner = Reps(session).get(new.owner.strip().lower()) if new.owner else account.owner
    opportunity = Opportunity(title=new.title.strip(), account_id=account.id, stage=process.start_stage, owner=owner)
    session.add(opportunity)
    session.flush()
    return opportunity


# -- leads -------------------------------------------------------------------------------------------------


def set_lead_status(session: Session, lead_id: int, status: str, now: datetime) -> list[Opportunity]:
    """Set a lead's status by hand; returns the opportunities whose sale this started."""
    subject = store.lead(session, lead_id)
    try:
        value = LookupValues(session, "lead_status", "lead status").resolve(status)
    except ValueError as error:
        raise ProcessError(str(error)) from None
    assert isinstance(subject.row, Lead) and value is not None
    subject.row.status = value
    return lead_status_changed(session, subject.row, value, now, automatic=False)


_CONVERTED = "crm_sync.leads_converted"  # session.info: leads an opportunity was made from in this session


def take_converted(session: Session) -> frozenset[int]:
    """The leads that got an opportunity (and maybe a contact) in ``session`` since the last call, and forget
    them. Their earlier mail and meetings must be matched again (SPEC §3.7): the callers queue a re-match once
    their transaction has committed."""
    return frozenset(session.info.pop(_CONVERTED, ()))


def lead_status_changed(
    session: Session, lead: Lead, status: str, now: datetime, *, automatic: bool
) -> list[Opportunity]:
    """Start every opportunity process that starts on this lead status, unless the lead already has an open
    opportunity. The opportunity is the lead's company (its account when one has that name). The lead is noted
    for ``take_converted``."""
    started = []
    # Only the processes this status starts are read: a broken definition of another process blocks nothing.
    for definition, process in store.processes_for(session, OPPORTUNITY, _starts_on(status)):
        trigger = process.start_on_lead_status
        if trigger is None or trigger.casefold() != status.casefold():
            continue
        existing = session.scalar(
            select(Opportunity.id).where(Opportunity.lead_id == lead.id, Opportunity.status == OPEN).limit(1)
        )
        if existing is not None:
            continue
        opportunity = _lead_opportunity(session, lead, process)
        subject = Subject(OPPORTUNITY, opportunity)
        _run(session, subject, definition, process, Start(now, automatic=automatic), now, automatic=automatic)
        started.append(opportunity)
        session.info.setdefault(_CONVERTED, set()).add(lead.id)
    return started


def _starts_on(status: str) -> Callable[[dict[str, Any]], bool]:
    return lambda definition: store.names_status(definition.get("start_on_lead_status"), status)


def starting_lead_statuses(session: Session) -> frozenset[str]:
    """The lead statuses (case-folded) that start an opportunity process (``start_on_lead_status``), as the
    stored definitions name them: who changes many leads' statuses asks ``lead_status_changed`` only for these."""
    found: frozenset[str] = frozenset()
    for row in store.definitions_for(session, OPPORTUNITY):
        found |= store.status_names(row.definition.get("start_on_lead_status"))
    return found


def _lead_opportunity(session: Session, lead: Lead, process: Process) -> Opportunity:
    company = lead.company.strip()
    account = session.scalars(select(Account).where(Account.name_key == name_key(company))).first() if company else None
    opportunity = Opportunity(
        title=company or lead.name,
        account_id=account.id if account else None,
        stage=process.start_stage,
        owner_id=lead.owner_id or (account.owner_id if account else None),
        lead_id=lead.id,
    )
    emails = select(LeadEmail.email).where(LeadEmail.lead_id == lead.id)
    contacts = set(session.scalars(select(ContactEmail.contact_id).where(ContactEmail.email.in_(emails))))
    if not contacts and (lead.emails or lead.phones):
        contacts.add(_contact_from_lead(session, lead, account))
    opportunity.participants.extend(OpportunityParticipant(contact_id=c) for c in sorted(contacts))
    session.add(opportunity)
    session.flush()
    return opportunity


def _contact_from_lead(session: Session, lead: Lead, account: Account | None) -> int:
    """The lead's person as a contact (source ``lead``), so the opportunity made from the lead has a participant:
    the steps that wait for a meeting or call with a participant, and matching by contact, then work."""
    contact = Contact(name=lead.name, company=lead.company, account_id=account.id if account else None, source="lead")
    contact.emails.extend(ContactEmail(email=e.email, position=i) for i, e in enumerate(lead.emails))
    contact.phones.extend(ContactPhone(kind="work", raw=p.raw, e164=p.e164) for p in lead.phones)
    session.add(contact)
    session.flush()
    return contact.id


def _auto_start_lead(session: Session, subject: Subject, activity: Activity, now: datetime) -> None:
    """A lead in an ``auto_start_on_lead_status`` status gets its process when a synced activity would
    complete (or be linked to) one of its first steps — its first meeting or call, say."""
    assert isinstance(subject.row, Lead)
    status = subject.row.status
    facts = None
    starting = store.processes_for(
        session, LEAD, lambda definition: store.names_status(definition.get("auto_start_on_lead_status"), status)
    )
    for definition, process in starting:
        if not may_satisfy(process, activity.type, activity.direction, activity.subject or ""):
            continue  # no step of it takes such an activity: nothing to read from the database
        facts = facts or store.activity_facts(session, activity)
        start = Start(now, count_history=True, automatic=True)
        started = handle(process, store.load_state(session, subject, process), start).state
        if satisfied_step(process, started, facts) is not None:
            _run(session, subject, definition, process, start, now, automatic=True)
            return


# -- activities --------------------------------------------------------------------------------------------


def activity_synced(session: Session, activity: Activity, now: datetime) -> list[str]:
    """A synced activity was created or changed: advance the processes of its opportunity and lead.

    Each process runs in its own savepoint: one that cannot run (a ``ProcessError``, e.g. an admin's edit broke
    its definition) is rolled back alone and the others still advance. Returns the failures, one line each
    (``<opportunity or lead>: <error>``); the callers keep them in the quarantine (``failures``)."""
    failed: list[str] = []
    subjects = []
    if activity.opportunity_id is not None:
        subjects.append(store.opportunity(session, activity.opportunity_id))
    if activity.lead_id is not None:
        lead_subject = store.lead(session, activity.lead_id)
        if lead_subject.row.process_id is None:
            _isolated(session, lead_subject, failed, partial(_auto_start_lead, session, lead_subject, activity, now))
        subjects.append(lead_subject)
    for subject in subjects:
        if subject.row.process_id is not None:
            _isolated(session, subject, failed, partial(_advance, session, subject, activity, now))
    return failed


def _isolated(session: Session, subject: Subject, failed: list[str], action: Callable[[], None]) -> None:
    try:
        with session.begin_nested():
            action()
    except ProcessError as error:
        failed.append(f"{subject.label}: {error}")


def _advance(session: Session, subject: Subject, activity: Activity, now: datetime) -> None:
    running = store.running_process(session, subject)
    if running is None:
        return
    definition, process = running
    if activity.process_step is not None and process.step(activity.process_step) is None:
        return  # it serves a step of another process (the opportunity's, not the lead's)
    event = ActivitySynced(store.activity_facts(session, activity))
    _run(session, subject, definition, process, event, now, automatic=True)


def advance_activity(session: Session, activity: Activity, now: datetime) -> list[str]:
    """``activity_synced``, with its failures kept in the quarantine (``failures``) and logged."""
    try:
        failed = activity_synced(session, activity, now)
    except ProcessError as error:  # its opportunity or lead could not be read: nothing was written
        failed = [str(error)]
    if failed:
        entry = failures.record(session, activity, failed)
        log.warning("%s (activity %s; quarantined, tried again later)", entry.reason, activity.id)
    return failed


def complete_and_advance(session: Session, activity_ids: list[int], now: datetime) -> int:
    """Try again the advancements that failed before (``retry_failed_advancements``: they are older), then mark
    these planned activities completed (their end passed) and advance the processes they serve.

    A process that cannot run keeps neither the others planned nor its activity: the activity is completed,
    the failure goes to the quarantine. Returns how many were completed."""
    retry_failed_advancements(session, now)
    completed = 0
    for start in range(0, len(activity_ids), CHUNK):
        chunk = activity_ids[start : start + CHUNK]
        result = session.execute(
            update(Activity).where(Activity.id.in_(chunk), Activity.status == PLANNED).values(status="completed")
        )
        completed += int(result.rowcount or 0)  # type: ignore[attr-defined]
        session.expire_all()
        activities = {a.id: a for a in session.scalars(select(Activity).where(Activity.id.in_(chunk)))}
        for activity_id in chunk:
            activity = activities[activity_id]
            if activity.status != "completed":
                continue
            advance_activity(session, activity, now)
    return completed


RETRY_LIMIT = 1000  # failed advancements tried again per round (the oldest first)


def retry_failed_advancements(session: Session, now: datetime, limit: int = RETRY_LIMIT) -> int:
    """Run the engine again for the activities whose advancement failed (their quarantine entries), in the
    order they first failed (the engine's order matters: an older activity cannot drive a process a newer one
    moved on), at most ``limit``. After an admin fixed a definition the missed steps complete and the entries
    go; one that fails again keeps its entry with the new reason and one more retry. Returns how many went
    through."""
    entries = session.scalars(
        select(QuarantineEntry)
        .where(QuarantineEntry.raw_item_id.is_(None), QuarantineEntry.external_id.startswith(failures.PREFIX))
        .order_by(QuarantineEntry.id)
        .limit(limit)
    ).all()
    done = 0
    for entry in entries:
        activity_id = failures.activity_id(entry)
        activity = session.get(Activity, activity_id) if activity_id is not None else None
        if activity is not None and advance_activity(session, activity, now):
            continue
        session.delete(entry)
        done += activity is not None
    if entries:
        session.flush()
    return done


def _serving(session: Session, activity: Activity) -> tuple[Subject, ProcessDefinition, Process] | None:
    """The opportunity or lead whose running process this activity's step belongs to."""
    if activity.process_step is None:
        return None
    candidates = []
    if activity.opportunity_id is not None:
        candidates.append(store.opportunity(session, activity.opportunity_id))
    if activity.lead_id is not None:
        candidates.append(store.lead(session, activity.lead_id))
    for subject in candidates:
        running = store.running_process(session, subject)
        if running is not None and running[1].step(activity.process_step) is not None:
            return subject, running[0], running[1]
    return None


def _planned_activity(session: Session, activity_id: int) -> Activity:
    activity = session.get(Activity, activity_id)
    if activity is None:
        raise ProcessError(f"no activity with id {activity_id}")
    if activity.status != PLANNED:
        raise ProcessError(f"activity {activity_id} is already {activity.status}")
    return activity


def complete_activity(session: Session, activity_id: int, result: str | None, now: datetime) -> Subject | None:
    """Complete a planned activity by hand; a step activity completes its step (result checked)."""
    activity = _planned_activity(session, activity_id)
    serving = _serving(session, activity)
    if serving is None:
        activity.status, activity.result = "completed", result
        return None
    subject, definition, process = serving
    _run(session, subject, definition, process, CompleteByHand(activity_id, now, result), now, automatic=False)
    return subject


def cancel_activity(session: Session, activity_id: int, now: datetime) -> Subject | None:
    """Cancel a planned activity by hand; a required step's activity ends its stage early."""
    activity = _planned_activity(session, activity_id)
    serving = _serving(session, activity)
    if serving is None:
        activity.status = "cancelled"
        return None
    subject, definition, process = serving
    _run(session, subject, definition, process, CancelByHand(activity_id, now), now, automatic=False)
    return subject


# -- stages ------------------------------------------------------------------------------------------------


def choose_stage(session: Session, opportunity_id: int, stage: str, closing: Closing, now: datetime) -> Subject:
    """Set an opportunity's stage by hand (its process's stages; the default process when none runs)."""
    subject = store.opportunity(session, opportunity_id)
    running = store.running_process(session, subject)
    if running is None:
        loaded = store.processes_for(session, OPPORTUNITY)
        if not loaded:
            raise ProcessError("no opportunity process is loaded; run: crm-sync init")
        running = loaded[0]
    definition, process = running
    closing = Closing(
        lost_reason=_lookup(session, "lost_reason", "lost reason", closing.lost_reason),
        won_reason=_lookup(session, "won_reason", "won reason", closing.won_reason),
        competitor=closing.competitor.strip() if closing.competitor and closing.competitor.strip() else None,
    )
    _run(session, subject, definition, process, ChooseStage(stage, now, closing), now, automatic=False)
    return subject


def _lookup(session: Session, kind: str, label: str, value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        return LookupValues(session, kind, label).resolve(value.strip())
    except ValueError as error:
        raise ProcessError(str(error)) from None

"""The process engine's only database code: load a subject's state, apply a transition's effects.

A *subject* is what a process runs for: an opportunity (stage, status, current step on the row) or a lead
(``process_stage`` and ``current_step``; its status is the lead status). Step activities are ``Activity`` rows
with ``process_step`` set: placeholders the engine created (``origin = "process"``) and synced activities
linked to a step. History rows go to ``OpportunityHistory`` / ``LeadHistory``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from crm_store.models import (
    Activity,
    ActivityContact,
    Document,
    Lead,
    Opportunity,
    OpportunityHistory,
    OpportunityParticipant,
    ProcessDefinition,
    SyncedItem,
)
from crm_store.models.sales import LeadHistory
from sync_service.process.definition import Process, parse_process
from sync_service.process.errors import DefinitionError, ProcessError
from sync_service.process.model import (
    CANCELLED,
    COMPLETED,
    OPEN,
    PLANNED,
    CancelActivity,
    CompleteActivity,
    CreatePlannedActivity,
    LinkActivity,
    ProcessState,
    RecordHistory,
    SetClosing,
    SetLeadStatus,
    SupersedePlaceholder,
    Transition,
)
from sync_service.process.satisfy import ActivityFacts, Parties

OPPORTUNITY, LEAD = "opportunity", "lead"
ORIGIN_PROCESS = "process"


@dataclass
class Subject:
    kind: str  # opportunity | lead
    row: Opportunity | Lead

    @property
    def id(self) -> int:
        return self.row.id

    @property
    def label(self) -> str:
        name = self.row.title if isinstance(self.row, Opportunity) else self.row.name
        return f"{self.kind} {self.row.id} {name!r}"

    @property
    def stage(self) -> str | None:
        return self.row.stage if isinstance(self.row, Opportunity) else self.row.process_stage

    def activity_link(self) -> InstrumentedAttribute[int | None]:
        return Activity.opportunity_id if self.kind == OPPORTUNITY else Activity.lead_id


def opportunity(session: Session, opportunity_id: int) -> Subject:
    row = session.get(Opportunity, opportunity_id)
    if row is None:
        raise ProcessError(f"no opportunity with id {opportunity_id}")
    return Subject(OPPORTUNITY, row)


def lead(session: Session, lead_id: int) -> Subject:
    row = session.get(Lead, lead_id)
    if row is None:
        raise ProcessError(f"no lead with id {lead_id}")
    return Subject(LEAD, row)


def lock(session: Session, subject: Subject) -> None:
    """Lock the subject's row until the transaction ends, so that two workers never advance the same process
    at once (PostgreSQL ``SELECT … FOR UPDATE``; SQLite has a single writer anyway). Pending changes are
    flushed first: the row is reloaded."""
    session.flush()
    session.refresh(subject.row, with_for_update=True)


# -- definitions -------------------------------------------------------------------------------------------


# definition (as canonical JSON) → its Process, or the one-line error of a broken one: parsing costs ~0.5 ms
_PARSED: dict[str, Process | str] = {}
_PARSED_MAX = 64


def parsed_process(definition: object) -> Process:
    """``parse_process``, remembered by the definition's content (the engine reads the definitions for every
    synced activity of a lead or opportunity; an edited definition is a new key, so nothing goes stale). A
    broken definition's ``DefinitionError`` is remembered too, and raised anew each time."""
    key = json.dumps(definition, sort_keys=True, default=str)
    found = _PARSED.get(key)
    if found is None:
        try:
            found = parse_process(definition)
        except DefinitionError as error:
            found = str(error)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = found
    if isinstance(found, str):
        raise DefinitionError(found)
    return found


def running_process(session: Session, subject: Subject) -> tuple[ProcessDefinition, Process] | None:
    if subject.row.process_id is None:
        return None
    row = session.get_one(ProcessDefinition, subject.row.process_id)
    return row, parsed_process(row.definition)


def process_named(session: Session, name: str) -> tuple[ProcessDefinition, Process]:
    row = definition_row_named(session, name)
    return row, parsed_process(row.definition)


def definition_row_named(session: Session, name: str) -> ProcessDefinition:
    """The stored process ``name`` (any case), unparsed: a broken definition can still be exported and fixed."""
    row = session.scalars(
        select(ProcessDefinition).where(func.lower(ProcessDefinition.name) == name.strip().lower())
    ).first()
    if row is None:
        names = ", ".join(session.scalars(select(ProcessDefinition.name).order_by(ProcessDefinition.id)))
        raise ProcessError(f"no process named {name!r} (known: {names or 'none; run crm-sync init'})")
    return row


def processes_for(
    session: Session, kind: str, when: Callable[[dict[str, Any]], bool] | None = None
) -> list[tuple[ProcessDefinition, Process]]:
    """Every loaded process that applies to ``kind`` (opportunity | lead), oldest first. ``when``: only those
    whose stored definition (the raw dict) passes — only they are parsed, so a broken definition raises its
    ``DefinitionError`` only where it matters (a lead status that does not start the Corporate sale does not
    need the Corporate sale's definition)."""
    out = []
    for row in definitions_for(session, kind):
        if when is None or when(row.definition):
            out.append((row, parsed_process(row.definition)))
    return out


def definitions_for(session: Session, kind: str) -> list[ProcessDefinition]:
    """The stored definitions that say they apply to ``kind``, oldest first, unparsed."""
    rows = session.scalars(select(ProcessDefinition).order_by(ProcessDefinition.id))
    return [row for row in rows if isinstance(row.definition, dict) and row.definition.get("applies_to") == kind]


def status_names(value: object) -> frozenset[str]:
    """The lead statuses (case-folded) a stored ``start_on_lead_status`` / ``auto_start_on_lead_status`` value
    names: a string or a list of them (anything else in a broken definition names none)."""
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return frozenset(v.strip().casefold() for v in values if isinstance(v, str) and v.strip())


def names_status(value: object, status: str) -> bool:
    """Whether a stored ``start_on_lead_status`` / ``auto_start_on_lead_status`` value names ``status``."""
    return status.strip().casefold() in status_names(value)


# -- state -------------------------------------------------------------------------------------------------


def load_state(session: Session, subject: Subject, process: Process) -> ProcessState:
    row = subject.row
    stage_name = subject.stage or ""
    stage = process.stage(stage_name)
    keys = [s.key for s in stage.steps] if stage else []
    link = subject.activity_link()
    step_rows = session.execute(
        select(Activity.id, Activity.process_step, Activity.origin)
        .where(link == row.id, Activity.status == PLANNED, Activity.process_step.in_(keys))
        .order_by(Activity.id)
    ).all()
    placeholders = {str(key): int(aid) for aid, key, origin in step_rows if origin == ORIGIN_PROCESS}
    linked = tuple((int(aid), str(key)) for aid, key, origin in step_rows if origin != ORIGIN_PROCESS)
    return ProcessState(
        stage=stage_name,
        status=row.status if isinstance(row, Opportunity) else OPEN,
        current_step=row.current_step,
        running=row.process_id is not None,
        since=row.advanced_at,
        placeholders=tuple(placeholders.items()),
        linked=linked,
        consumed=_consumed(session, subject),
        parties=_parties(session, subject),
    )


def _consumed(session: Session, subject: Subject) -> frozenset[int]:
    history = OpportunityHistory if subject.kind == OPPORTUNITY else LeadHistory
    owner = OpportunityHistory.opportunity_id if subject.kind == OPPORTUNITY else LeadHistory.lead_id
    ids = session.scalars(
        select(history.activity_id).where(
            owner == subject.id, history.step.is_not(None), history.activity_id.is_not(None)
        )
    )
    return frozenset(i for i in ids if i is not None)


def _parties(session: Session, subject: Subject) -> Parties:
    row = subject.row
    owner = row.owner.email if row.owner is not None else None
    if isinstance(row, Lead):
        return Parties(frozenset(), row.id, owner)
    contacts = session.scalars(
        select(OpportunityParticipant.contact_id).where(OpportunityParticipant.opportunity_id == row.id)
    )
    return Parties(frozenset(contacts), row.lead_id, owner)


def activity_facts(session: Session, activity: Activity) -> ActivityFacts:
    contacts = session.scalars(select(ActivityContact.contact_id).where(ActivityContact.activity_id == activity.id))
    attachment = session.scalar(
        select(Document.id).where(Document.activity_id == activity.id, Document.kind == "attachment").limit(1)
    )
    return ActivityFacts(
        id=activity.id,
        type=activity.type,
        status=activity.status,
        at=activity.end_at or activity.start_at,
        direction=activity.direction,
        subject=activity.subject or "",
        has_attachment=attachment is not None,
        contact_ids=frozenset(contacts),
        lead_id=activity.lead_id,
        process_step=activity.process_step,
        sender=_sender(session, activity),
    )


def _sender(session: Session, activity: Activity) -> str | None:
    """Who sent the synced email or organised the synced meeting (the item's matching facts keep it); for an
    activity a person or a process made, its owner."""
    if activity.item_id is None:
        return activity.owner.email if activity.owner is not None else None
    item = session.get(SyncedItem, activity.item_id)
    sender = item.facts.get("sender") if item is not None and isinstance(item.facts, dict) else None
    return str(sender[0]) if isinstance(sender, list) and sender and sender[0] else None


# -- applying a transition ---------------------------------------------------------------------------------


def apply(
    session: Session, subject: Subject, definition: ProcessDefinition, transition: Transition, now: datetime
) -> list[str]:
    """Write the new state and the effects; returns the lead statuses set (in order)."""
    row, state = subject.row, transition.state
    if isinstance(row, Opportunity):
        row.stage, row.status = state.stage, state.status
    else:
        row.process_stage = state.stage
    if state.running:
        row.process_id = definition.id
        row.current_step, row.advanced_at = state.current_step, state.since
    statuses: list[str] = []
    for effect in transition.effects:
        if isinstance(effect, CreatePlannedActivity):
            session.add(_placeholder(subject, effect))
        elif isinstance(effect, CompleteActivity | CancelActivity):
            activity = session.get_one(Activity, effect.activity_id)
            activity.status = COMPLETED if isinstance(effect, CompleteActivity) else CANCELLED
            if effect.result is not None:
                activity.result = effect.result
        elif isinstance(effect, SupersedePlaceholder):
            session.delete(session.get_one(Activity, effect.activity_id))
        elif isinstance(effect, LinkActivity):
            session.get_one(Activity, effect.activity_id).process_step = effect.step
        elif isinstance(effect, RecordHistory):
            session.add(history_row(subject.kind, subject.id, effect, now))
        elif isinstance(effect, SetLeadStatus) and isinstance(row, Lead):
            row.status = effect.status
            statuses.append(effect.status)
        elif isinstance(effect, SetClosing) and isinstance(row, Opportunity):
            closing = effect.closing
            row.lost_reason, row.won_reason, row.competitor = (
                closing.lost_reason,
                closing.won_reason,
                closing.competitor,
            )
    session.flush()
    return statuses


def follow_owner(session: Session, subject: Subject) -> int:
    """Give the subject's open step activities to its owner as it is now (an owner change: SPEC §2, a step
    "creates a planned activity for the opportunity owner"); returns how many moved. Only the placeholders the
    process made and that are still planned: completed and cancelled ones stay with whoever they were for, and
    a synced meeting linked to a step stays with the rep whose calendar it is in."""
    session.flush()  # the owner just set (perhaps a new user) has its id
    owner_id = subject.row.owner_id
    open_steps = session.scalars(
        select(Activity).where(
            subject.activity_link() == subject.id,
            Activity.origin == ORIGIN_PROCESS,
            Activity.status == PLANNED,
            Activity.owner_id.is_distinct_from(owner_id),
        )
    ).all()
    for activity in open_steps:
        activity.owner_id = owner_id
    return len(open_steps)


def _placeholder(subject: Subject, effect: CreatePlannedActivity) -> Activity:
    row = subject.row
    hints = "\n".join(f"- {hint}" for hint in effect.hints)
    activity = Activity(
        type=effect.type,
        subject=effect.title,
        status=PLANNED,
        origin=ORIGIN_PROCESS,
        process_step=effect.step,
        owner_id=row.owner_id,
        body=f"Hints:\n{hints}" if hints else "",
    )
    if isinstance(row, Opportunity):
        activity.opportunity_id, activity.account_id = row.id, row.account_id
    else:
        activity.lead_id = row.id
    return activity


def history_row(kind: str, subject_id: int, effect: RecordHistory, now: datetime) -> OpportunityHistory | LeadHistory:
    """The history row of an opportunity (``kind`` OPPORTUNITY) or a lead that records ``effect``."""
    values = {
        "stage": effect.stage,
        "step": effect.step,
        "result": effect.result,
        "activity_id": effect.activity_id,
        "automatic": effect.automatic,
        "at": now,
    }
    if kind == OPPORTUNITY:
        return OpportunityHistory(opportunity_id=subject_id, **values)
    return LeadHistory(lead_id=subject_id, **values)

"""A synced meeting or call that completed a step and is cancelled at the source afterwards (SPEC §2, §4).

A step completes when its meeting *has happened*; the engine consumes the activity (``engine``: every activity
causes at most one transition), so a later cancellation of the same meeting — its calendar says
``STATUS:CANCELLED`` or ``METHOD:CANCEL``, it was deleted from every calendar that carried it, an ``EXDATE``
took the occurrence out — changes nothing in the process. That is deliberate: a past meeting deleted from a
calendar is often just clean-up, and rolling the stage back by itself would undo real progress.

It must not pass silently either: the history (SPEC §2: "every transition is recorded … with the activity
that caused it") would keep saying that a cancelled activity completed the step. So the opportunity's (or
lead's) history gets one more entry for the same stage and step, with the cancelled activity, ``automatic``
and the result ``RESULT_CANCELLED_AFTER``: ``export opportunities`` lists it, ``opportunity show`` prints it
as a note (``views``) and a person decides whether to set the stage back by hand.

The entry is not a transition, and no reader takes it for one: the engine reads the history only for the
activities a step consumed (``store._consumed``), and this activity is already one of them; the stages
visited (``importers.last_import``) gain none. It is written once per cancellation: the pipeline calls
``note_cancelled`` only where an activity's status *becomes* cancelled (a re-sync or a re-match of a
cancelled meeting does not), so a meeting that is restored and cancelled again gets a second note.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import Activity, OpportunityHistory
from crm_store.models.sales import LeadHistory
from sync_service.process.model import RESULT_CANCELLED, RESULT_CANCELLED_AFTER, RESULT_SKIPPED, RecordHistory
from sync_service.process.store import LEAD, OPPORTUNITY, history_row

# Step results that are not a completion: the activity completed nothing (or this note says so already).
_NOT_COMPLETED = frozenset({RESULT_CANCELLED, RESULT_SKIPPED, RESULT_CANCELLED_AFTER})


@dataclass(frozen=True, slots=True)
class StepEntry:
    """One step entry of a subject's history caused by the activity, in the order it was written."""

    stage: str
    step: str
    result: str | None


def note_for(entries: Sequence[StepEntry], activity_id: int) -> RecordHistory | None:
    """The history entry saying the activity was cancelled after completing its step, or None when it
    completed none. Pure. The step is the one the activity completed last (a meeting that also completed
    earlier steps implicitly is noted once, for the step it was linked to)."""
    completed = [entry for entry in entries if entry.result not in _NOT_COMPLETED]
    if not completed:
        return None
    last = completed[-1]
    return RecordHistory(last.stage, last.step, RESULT_CANCELLED_AFTER, activity_id, automatic=True)


def note_cancelled(session: Session, activity: Activity, now: datetime) -> int:
    """The activity has just become cancelled: note it in the history of each opportunity or lead whose step
    it completed. Returns how many entries were written (0 for nearly every cancelled meeting: only one that
    was linked to a step can have completed it)."""
    if activity.id is None or activity.process_step is None:
        return 0
    written = 0
    histories = (
        (OPPORTUNITY, OpportunityHistory, OpportunityHistory.opportunity_id, activity.opportunity_id),
        (LEAD, LeadHistory, LeadHistory.lead_id, activity.lead_id),
    )
    for kind, model, subject, subject_id in histories:
        if subject_id is None:
            continue
        rows = session.execute(
            select(model.stage, model.step, model.result)
            .where(subject == subject_id, model.activity_id == activity.id, model.step.is_not(None))
            .order_by(model.id)
        ).all()
        effect = note_for([StepEntry(stage, step or "", result) for stage, step, result in rows], activity.id)
        if effect is not None:
            session.add(history_row(kind, subject_id, effect, now))
            written += 1
    return written

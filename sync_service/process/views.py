"""Read-only summaries of a subject's process, for the CLI and the demo: where it is and what is open."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import Activity, Opportunity, OpportunityHistory
from crm_store.models.sales import LeadHistory
from sync_service.process import store
from sync_service.process.definition import Process
from sync_service.process.model import OPEN, PLANNED, RESULT_CANCELLED_AFTER
from sync_service.process.store import Subject


@dataclass(frozen=True)
class OpenActivity:
    id: int
    type: str
    title: str
    hints: tuple[str, ...]
    synced: bool  # a synced activity linked to the step (e.g. a future meeting), not a placeholder


@dataclass(frozen=True)
class ProcessView:
    label: str
    process: str | None
    stage: str | None
    status: str
    current_step: str | None  # its title
    open_activities: tuple[OpenActivity, ...]
    proposed: tuple[str, ...]  # next stages to choose from when no step is open
    notes: tuple[str, ...] = ()  # steps completed by an activity that was cancelled since (``cancelled_after``)

    def lines(self) -> list[str]:
        if self.process is None:
            return [f"{self.label}: stage {self.stage}, {self.status}, no process running", *self.notes]
        where = f"{self.label}: {self.process}, stage {self.stage}"
        if self.status != OPEN:
            return [f"{where} ({self.status})", *self.notes]
        out = [f"{where}, step {self.current_step}" if self.current_step else f"{where}, no open step"]
        for activity in self.open_activities:
            kind = "linked " + activity.type if activity.synced else "planned " + activity.type
            out.append(f"  activity {activity.id} ({kind}): {activity.title}")
            out.extend(f"    hint: {hint}" for hint in activity.hints)
        if not self.current_step and self.proposed:
            out.append(f"  next stage to choose: {' or '.join(self.proposed)}")
        return [*out, *self.notes]


def process_view(session: Session, subject: Subject) -> ProcessView:
    row = subject.row
    status = row.status if isinstance(row, Opportunity) else OPEN
    running = store.running_process(session, subject)
    notes = _cancelled_notes(session, subject, running[1] if running is not None else None)
    if running is None:
        return ProcessView(subject.label, None, subject.stage, status, None, (), (), notes)
    process = running[1]
    stage = process.stage(subject.stage or "")
    found = process.step(row.current_step)
    activities = session.scalars(
        select(Activity)
        .where(subject.activity_link() == row.id, Activity.status == PLANNED, Activity.process_step.is_not(None))
        .order_by(Activity.id)
    )
    open_activities = []
    for activity in activities:
        step = process.step(activity.process_step)
        if step is not None and stage is not None and step[0].name == stage.name:
            open_activities.append(
                OpenActivity(activity.id, activity.type, activity.subject, step[1].hints, activity.origin != "process")
            )
    proposed = stage.next if stage is not None and found is None else ()
    title = found[1].title if found else None
    return ProcessView(
        subject.label, process.name, subject.stage, status, title, tuple(open_activities), proposed, notes
    )


def _cancelled_notes(session: Session, subject: Subject, process: Process | None) -> tuple[str, ...]:
    """One line per history note that an activity which completed a step was cancelled since: the step
    still counts as done, and only a person can tell whether the stage should be done again."""
    history = OpportunityHistory if subject.kind == store.OPPORTUNITY else LeadHistory
    owner = OpportunityHistory.opportunity_id if subject.kind == store.OPPORTUNITY else LeadHistory.lead_id
    rows = session.execute(
        select(history.stage, history.step, history.activity_id, Activity.subject)
        .outerjoin(Activity, Activity.id == history.activity_id)
        .where(owner == subject.id, history.result == RESULT_CANCELLED_AFTER)
        .order_by(history.id)
    ).all()
    titles = process.step_titles() if process is not None else {}
    return tuple(
        f"  note: activity {activity_id} ({title or '?'}) completed step {titles.get(step or '', step)} of "
        f"{stage} and was cancelled since; the step still counts (set the stage by hand to do it again)"
        for stage, step, activity_id, title in rows
    )


def automatic_progress(session: Session) -> list[str]:
    """Per opportunity that runs a process: where it stands and the steps synced activities completed."""
    titles = {a.id: a.subject for a in session.scalars(select(Activity).where(Activity.process_step.is_not(None)))}
    lines = []
    for row in session.scalars(select(Opportunity).where(Opportunity.process_id.is_not(None)).order_by(Opportunity.id)):
        view = process_view(session, store.Subject(store.OPPORTUNITY, row))
        where = f"step {view.current_step}" if view.current_step else ("no open step" if view.status == OPEN else "")
        lines.append(f"[{row.id}] {row.title}: {view.stage}" + (f", {where}" if where else f" ({view.status})"))
        process = store.running_process(session, store.Subject(store.OPPORTUNITY, row))
        step_titles = process[1].step_titles() if process else {}
        for entry in row.history:
            if entry.automatic and entry.step:
                cause = titles.get(entry.activity_id or 0, "")
                lines.append(
                    f"    automatically: {step_titles.get(entry.step, entry.step)} → {entry.result}"
                    + (f" (activity {entry.activity_id}: {cause})" if cause else "")
                )
    return lines

"""Read-only summaries of a subject's process, for the CLI and the demo: where it is and what is open."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import Activity, Opportunity
from sync_service.process import store
from sync_service.process.model import OPEN, PLANNED
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

    def lines(self) -> list[str]:
        if self.process is None:
            return [f"{self.label}: stage {self.stage}, {self.status}, no process running"]
        where = f"{self.label}: {self.process}, stage {self.stage}"
        if self.status != OPEN:
            return [f"{where} ({self.status})"]
        out = [f"{where}, step {self.current_step}" if self.current_step else f"{where}, no open step"]
        for activity in self.open_activities:
            kind = "linked " + activity.type if activity.synced else "planned " + activity.type
            out.append(f"  activity {activity.id} ({kind}): {activity.title}")
            out.extend(f"    hint: {hint}" for hint in activity.hints)
        if not self.current_step and self.proposed:
            out.append(f"  next stage to choose: {' or '.join(self.proposed)}")
        return out


def process_view(session: Session, subject: Subject) -> ProcessView:
    row = subject.row
    status = row.status if isinstance(row, Opportunity) else OPEN
    running = store.running_process(session, subject)
    if running is None:
        return ProcessView(subject.label, None, subject.stage, status, None, (), ())
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
    return ProcessView(subject.label, process.name, subject.stage, status, title, tuple(open_activities), proposed)


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

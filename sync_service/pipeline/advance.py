"""Seam between the sync pipeline and the sales-process engine (SPEC §2, automatic advancement).

The pipeline calls ``activity_synced`` after it created or updated an activity from a synced item (inside
the item's savepoint). The process engine decides whether an open step of the activity's opportunity (or
lead) is satisfied by it: a completed activity completes the step, a planned one (a future meeting) is linked
to it, a cancelled linked one ends the stage early. Calling it again for the same activity changes nothing.
One that completed a step and is cancelled afterwards leaves the step completed, with a note in the history
(``activity_cancelled``).

Most synced activities belong to no running process. A processing batch reads once which opportunities and
leads can advance (``AdvanceScope``); the others skip the engine, its queries and its savepoint. So does an
activity of a lead that only a process start could advance, when no step of the processes that start by
themselves takes an activity of its type, direction and subject.

A process that cannot run (say, an admin's edit broke its definition) must not stop the sync, nor the other
processes: each process advances in its own savepoint, the activity stays logged, and the failure is kept in
the quarantine (``process.failures``: ``crm-sync export quarantine``, ``status``, the dashboard) and counted
with the run's quarantined items; the engine tries it again with every ``complete_due`` until it goes through.
A lead process whose definition cannot be read cannot say which activities it takes: while one is broken,
every activity of a lead in a status that starts a process goes to the engine, which reports the error.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from crm_store.models import Activity, Lead, Opportunity
from sync_service.pipeline.bulk import PendingEmail
from sync_service.pipeline.context import ProcessContext
from sync_service.process import cancelled_after, service, store
from sync_service.process.definition import Process
from sync_service.process.errors import DefinitionError
from sync_service.process.satisfy import may_satisfy


@dataclass(frozen=True)
class AdvanceScope:
    """Who can advance, read at the start of a batch. Opportunities and leads created later (ids above the
    highest seen) are always asked about; only those known to be inert are skipped."""

    opportunities: frozenset[int]  # with a running process
    max_opportunity: int
    leads: frozenset[int]  # with a running process
    max_lead: int
    starting: frozenset[int] = frozenset()  # without one, in a status that starts one (``auto_start_on_lead_status``)
    starters: tuple[Process, ...] = ()  # the lead processes that start by themselves
    unreadable: bool = False  # a lead process's definition is broken: what it takes is unknown

    def may_advance(
        self, opportunity: int | None, lead: int | None, activity: tuple[str, str | None, str] | None = None
    ) -> bool:
        """``activity``: its type, direction and subject, when known."""
        if opportunity is not None and (opportunity in self.opportunities or opportunity > self.max_opportunity):
            return True
        if lead is None:
            return False
        if lead in self.leads or lead > self.max_lead:
            return True
        if lead not in self.starting:
            return False
        return activity is None or self.unreadable or any(may_satisfy(process, *activity) for process in self.starters)


def advance_scope(session: Session) -> AdvanceScope:
    starters: list[Process] = []
    named: set[str] = set()  # the statuses that start a lead process, as the definitions name them
    unreadable = False
    for row in store.definitions_for(session, store.LEAD):
        named |= store.status_names(row.definition.get("auto_start_on_lead_status"))
        try:
            process = store.parsed_process(row.definition)
        except DefinitionError:
            unreadable = True
            continue
        if process.auto_start_on_lead_status:
            starters.append(process)
    statuses = sorted(named)
    running = session.scalars(select(Opportunity.id).where(Opportunity.process_id.is_not(None)))
    leads = session.execute(
        select(Lead.id, Lead.process_id).where(or_(Lead.process_id.is_not(None), func.lower(Lead.status).in_(statuses)))
    ).all()
    return AdvanceScope(
        frozenset(running),
        int(session.scalar(select(func.max(Opportunity.id))) or 0),
        frozenset(lead for lead, process in leads if process is not None),
        int(session.scalar(select(func.max(Lead.id))) or 0),
        frozenset(lead for lead, process in leads if process is None),
        tuple(starters),
        unreadable,
    )


def activity_synced(ctx: ProcessContext, activity: Activity, *, deferrable: bool = False) -> None:
    """Called for every synced activity that was created or changed. ``deferrable``: the activity will not
    change again in this batch (a new email), so in a batch its turn may wait until the next activity that
    cannot wait, or the batch's end: the engine still sees every activity in the same order, and the batch's
    rows are written together instead of being flushed for each email."""
    kind = (activity.type, activity.direction, activity.subject or "")
    if ctx.advancing is not None and not ctx.advancing.may_advance(activity.opportunity_id, activity.lead_id, kind):
        return
    if deferrable and ctx.deferred is not None:
        ctx.deferred.append(activity)
        return
    advance_deferred(ctx)
    _advance(ctx, activity)


def activity_cancelled(ctx: ProcessContext, activity: Activity) -> None:
    """Called where a synced activity's status *becomes* cancelled (not when a cancelled one is seen again),
    before ``activity_synced``: one that had completed a step leaves a note in the history
    (``process.cancelled_after``). The step stays completed: no stage is rolled back by itself."""
    cancelled_after.note_cancelled(ctx.session, activity, ctx.now)


def pending_synced(ctx: ProcessContext, email: PendingEmail) -> None:
    """A new email written in bulk (``pipeline.bulk``): its turn waits like a deferrable activity's."""
    assert email.activity is not None and ctx.deferred is not None
    row = email.activity
    kind = (row["type"], row["direction"], row["subject"] or "")
    if ctx.advancing is None or ctx.advancing.may_advance(row["opportunity_id"], row["lead_id"], kind):
        ctx.deferred.append(email)


def advance_deferred(ctx: ProcessContext) -> None:
    """Run the engine for the activities that waited, in their order — after writing the batch's new contacts
    and pending emails, which the engine reads back from the database."""
    if ctx.batch is not None:
        ctx.batch.contacts.write(ctx.session)  # the emails' links may name them
        ctx.batch.bulk.write(ctx.session)
    if ctx.deferred:
        waiting = list(ctx.deferred)
        ctx.deferred.clear()
        for entry in waiting:
            if isinstance(entry, PendingEmail):
                assert entry.activity_id is not None
                _advance(ctx, ctx.session.get_one(Activity, entry.activity_id))
            else:
                _advance(ctx, entry)


def _advance(ctx: ProcessContext, activity: Activity) -> None:
    if activity.id is None:  # a new activity not yet flushed: the engine looks it up by id
        ctx.session.flush()
    if service.advance_activity(ctx.session, activity, ctx.now):
        ctx.stats.quarantined += 1  # kept in the quarantine, retried by ``complete_due``
    ctx.stats.leads_converted += len(service.take_converted(ctx.session))  # Awaiting sale: re-match their mail

"""An in-memory subject for the pure process engine: applies effects the way ``process.store`` does and
derives the next state the same way, so unit tests can walk a process event by event without a database."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import datetime

from sync_service.process.definition import Process
from sync_service.process.engine import handle
from sync_service.process.model import (
    ActivitySynced,
    CancelActivity,
    Closing,
    CompleteActivity,
    CreatePlannedActivity,
    Event,
    LinkActivity,
    ProcessState,
    RecordHistory,
    SetClosing,
    SetLeadStatus,
    SupersedePlaceholder,
    Transition,
)
from sync_service.process.satisfy import ActivityFacts, Parties


@dataclass
class FakeActivity:
    id: int
    type: str
    status: str
    origin: str  # process | sync
    step: str | None = None
    result: str | None = None
    title: str = ""
    hints: tuple[str, ...] = ()
    facts: ActivityFacts | None = None


class FakeSubject:
    def __init__(
        self,
        process: Process,
        stage: str = "",
        *,
        participants: frozenset[int] = frozenset({7}),
        lead_id: int | None = None,
    ) -> None:
        self.process = process
        self.state = ProcessState(stage=stage, parties=Parties(participants, lead_id))
        self.activities: dict[int, FakeActivity] = {}
        self.history: list[RecordHistory] = []
        self.lead_statuses: list[str] = []
        self.closing: Closing | None = None
        self.last: Transition | None = None
        self._ids = itertools.count(100)

    # -- driving ---------------------------------------------------------------------------------------

    def send(self, event: Event) -> Transition:
        transition = handle(self.process, self.state, event)
        for effect in transition.effects:
            self._apply(effect)
        self.state = self._reload(transition.state)
        self.last = transition
        return transition

    def synced(self, activity_id: int, type_: str, status: str, at: datetime | None, **facts: object) -> Transition:
        """A synced activity (new or changed) reaches the engine, with its current link."""
        record = self.activities.get(activity_id)
        if record is None:
            record = self.activities[activity_id] = FakeActivity(activity_id, type_, status, "sync")
        record.status = status
        base = {"contact_ids": frozenset({7})} | facts
        activity = ActivityFacts(activity_id, type_, status, at, process_step=record.step, **base)  # type: ignore[arg-type]
        record.facts = activity
        return self.send(ActivitySynced(activity))

    def resend(self, activity_id: int) -> Transition:
        record = self.activities[activity_id]
        assert record.facts is not None
        return self.send(ActivitySynced(replace(record.facts, process_step=record.step, status=record.status)))

    # -- looking -------------------------------------------------------------------------------------------

    def placeholder(self, step: str) -> int:
        found = [
            a.id for a in self.activities.values() if a.origin == "process" and a.step == step and a.status == "planned"
        ]
        assert len(found) == 1, (step, found)
        return found[0]

    def planned(self) -> list[tuple[str | None, str]]:
        return [(a.step, a.origin) for a in self.activities.values() if a.status == "planned"]

    def rows(self) -> list[tuple[str, str | None, str | None, bool]]:
        return [(h.stage, h.step, h.result, h.automatic) for h in self.history]

    # -- the store's job, in memory ------------------------------------------------------------------------

    def _apply(self, effect: object) -> None:
        if isinstance(effect, CreatePlannedActivity):
            new_id = next(self._ids)
            self.activities[new_id] = FakeActivity(
                new_id, effect.type, "planned", "process", effect.step, title=effect.title, hints=effect.hints
            )
        elif isinstance(effect, CompleteActivity | CancelActivity):
            record = self.activities[effect.activity_id]
            record.status = "completed" if isinstance(effect, CompleteActivity) else "cancelled"
            if effect.result is not None:
                record.result = effect.result
        elif isinstance(effect, SupersedePlaceholder):
            del self.activities[effect.activity_id]
        elif isinstance(effect, LinkActivity):
            self.activities[effect.activity_id].step = effect.step
        elif isinstance(effect, RecordHistory):
            self.history.append(effect)
        elif isinstance(effect, SetLeadStatus):
            self.lead_statuses.append(effect.status)
        elif isinstance(effect, SetClosing):
            self.closing = effect.closing

    def _reload(self, state: ProcessState) -> ProcessState:
        stage = self.process.stage(state.stage)
        keys = {s.key for s in stage.steps} if stage else set()
        planned = [a for a in self.activities.values() if a.status == "planned" and a.step in keys]
        return replace(
            state,
            placeholders=tuple((str(a.step), a.id) for a in planned if a.origin == "process"),
            linked=tuple((a.id, str(a.step)) for a in planned if a.origin != "process"),
            consumed=frozenset(h.activity_id for h in self.history if h.step and h.activity_id),
        )

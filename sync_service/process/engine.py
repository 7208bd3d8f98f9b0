"""The process engine (SPEC §2): ``handle(process, state, event) → Transition(state, effects)``. Pure.

The state of one subject (an opportunity or a lead) is its stage, its status and its *current step*: the first
unfinished step of the stage. The *open* steps are the current step and, while a step is optional, the steps
after it up to the first required one; each open step has a planned placeholder activity.

Rules, all driven by the definition (no stage is named here):

- Entering a stage records it in the history, cancels the placeholders of the stage that was left and opens
  the first steps. A stage with no (more) steps is *done*: its first ``next`` stage is entered automatically
  (the rep may choose another), unless that stage needs closing details (a lost reason) or was already entered
  in this transition; a stage without ``next`` ends the process there.
- A step completes with one of its results: by hand (its activity is completed), or automatically when a
  synced activity that satisfies it is completed (its ``default_result``). A synced activity may satisfy the
  current step or any later step of the stage; the latest one it satisfies wins, and the unfinished steps
  before it are completed implicitly with their default result (optional ones are skipped) — a proposal that
  was sent was prepared. The synced activity is linked to the step and gets the result; the step's planned
  placeholder is *superseded* (removed: the synced call is the call that was planned, not a second one). The
  placeholders of implicitly completed steps are completed, those of skipped steps cancelled. A step completed
  by hand completes its placeholder.
- A planned synced activity (a future meeting) that satisfies a step is linked to it; the step completes when
  that activity does. If it is cancelled, the step is cancelled and the stage ends early, as when a step's
  activity is cancelled by hand (an optional step is only skipped).
- The result's outcome then applies: ``next`` step, ``repeat`` the step (a new placeholder), ``back`` to an
  earlier step, or ``end_stage`` (the stage ends early: no step is open and the rep chooses the next stage).
- Every activity causes at most one transition (``consumed``), which makes re-syncing the same item harmless,
  and only activities that happened at or after the last progress count (``since``; a meeting already linked
  to its step always counts): an old meeting seen again by a later sync never completes a step opened after
  it. Starting a process for an existing opportunity leaves ``since`` empty, so its logged correspondence may
  drive the first steps.
"""

from __future__ import annotations

from dataclasses import replace

from sync_service.process.definition import BACK, CLOSING_FIELDS, END_STAGE, REPEAT, Process, Stage, Step
from sync_service.process.errors import ProcessError
from sync_service.process.model import (
    CANCELLED,
    COMPLETED,
    OPEN,
    RESULT_CANCELLED,
    RESULT_SKIPPED,
    RESULT_STAGE_ENDED,
    RESULT_STAGE_LEFT,
    ActivitySynced,
    CancelActivity,
    CancelByHand,
    ChooseStage,
    Closing,
    CompleteActivity,
    CompleteByHand,
    CreatePlannedActivity,
    Effect,
    Event,
    LinkActivity,
    ProcessState,
    RecordHistory,
    SetClosing,
    SetLeadStatus,
    Start,
    SupersedePlaceholder,
    Transition,
)
from sync_service.process.satisfy import ActivityFacts, satisfies


def open_steps(process: Process, stage_name: str, current: str | None) -> tuple[Step, ...]:
    """The current step and, while a step is optional, the steps after it up to the first required one."""
    stage = process.stage(stage_name)
    index = stage.index(current) if stage else None
    if stage is None or index is None:
        return ()
    chain = []
    for step in stage.steps[index:]:
        chain.append(step)
        if not step.optional:
            break
    return tuple(chain)


def handle(process: Process, state: ProcessState, event: Event) -> Transition:
    """Apply one event; raises ``ProcessError`` for an action that is not allowed."""
    if isinstance(event, Start):
        return _start(process, state, event)
    if isinstance(event, ChooseStage):
        return _choose(process, state, event)
    if isinstance(event, ActivitySynced):
        return _synced(process, state, event.activity)
    return _by_hand(process, state, event)


def _start(process: Process, state: ProcessState, event: Start) -> Transition:
    if state.running:
        raise ProcessError(f"the {process.name} process is already running")
    name = _stage_name(process, event.stage or process.start_stage)
    if process.terminal(name):
        raise ProcessError(f"cannot start {process.name} at the closed stage {name!r}; choose an open stage first")
    run = _Run(process, replace(state, running=True), automatic=event.automatic)
    run.since = None if event.count_history else event.at
    run.enter(name, None, Closing())
    return run.transition()


def _choose(process: Process, state: ProcessState, event: ChooseStage) -> Transition:
    run = _Run(process, state, automatic=False)
    if state.running:
        run.since = event.at
    run.enter(_stage_name(process, event.stage), None, event.closing, chosen=True)
    return run.transition()


def _by_hand(process: Process, state: ProcessState, event: CompleteByHand | CancelByHand) -> Transition:
    run = _Run(process, state, automatic=False)
    step = run.served_step(event.activity_id) if state.running and state.status == OPEN else None
    if isinstance(event, CompleteByHand):
        if step is None:  # not a process activity (any more): just complete it
            return Transition(state, (CompleteActivity(event.activity_id, event.result),))
        result = event.result or step.default_result
        if result not in step.results:
            raise ProcessError(f"{result!r} is not a result of step {step.title!r} (one of: {', '.join(step.results)})")
        run.since = event.at
        run.complete(step, result, event.activity_id)
        return run.transition()
    if step is None:
        return Transition(state, (CancelActivity(event.activity_id, None),))
    run.since = event.at
    run.cancel(step, event.activity_id)
    return run.transition()


def _synced(process: Process, state: ProcessState, activity: ActivityFacts) -> Transition:
    if not state.running or state.status != OPEN or activity.id in state.consumed:
        return Transition(state)
    run = _Run(process, state, automatic=True)
    served = next((s for s in run.remaining() if s.key == activity.process_step), None)
    if activity.status == CANCELLED:
        if served is not None:
            run.cancel(served, activity.id)
        return run.transition()
    target = run.satisfied_step(activity, prefer=served)
    if target is None:
        if activity.process_step is not None:  # it served a step before but no longer does
            run.unlink(activity.id)
    elif activity.status == COMPLETED:
        if activity.at is not None and (run.since is None or activity.at > run.since):
            run.since = activity.at
        run.complete(target, target.default_result, activity.id)
    elif activity.process_step != target.key:
        run.link(activity.id, target.key)
    return run.transition()


def satisfied_step(process: Process, state: ProcessState, activity: ActivityFacts) -> Step | None:
    """The step this activity would complete or be linked to in ``state`` (None: it advances nothing)."""
    if not state.running or state.status != OPEN or activity.id in state.consumed or activity.status == CANCELLED:
        return None
    return _Run(process, state, automatic=True).satisfied_step(activity, prefer=None)


def _stage_name(process: Process, name: str) -> str:
    found = process.canonical_stage(name)
    if found is None:
        raise ProcessError(f"{name!r} is not a stage of {process.name} (one of: {', '.join(process.stage_names)})")
    return found


class _Run:
    """The working copy of a state while one event is applied; collects the effects."""

    def __init__(self, process: Process, state: ProcessState, *, automatic: bool) -> None:
        self.process, self.state, self.automatic = process, state, automatic
        self.stage, self.status, self.current = state.stage, state.status, state.current_step
        self.since = state.since
        self.placeholders = dict(state.placeholders)
        self.linked = dict(state.linked)
        self.consumed = set(state.consumed)
        self.created: set[str] = set()  # steps given a placeholder in this transition
        self.entered: set[str] = set()  # stages entered in this transition (no automatic loops)
        self.effects: list[Effect] = []

    def transition(self) -> Transition:
        state = replace(
            self.state,
            stage=self.stage,
            status=self.status,
            current_step=self.current,
            since=self.since,
            placeholders=tuple(self.placeholders.items()),
            linked=tuple(self.linked.items()),
            consumed=frozenset(self.consumed),
        )
        return Transition(state, tuple(self.effects))

    # -- where are we --------------------------------------------------------------------------------------

    def _stage(self) -> Stage | None:
        return self.process.stage(self.stage)

    def remaining(self) -> tuple[Step, ...]:
        """The current step and every later step of the stage: what a synced activity may satisfy."""
        stage = self._stage()
        index = stage.index(self.current) if stage else None
        return stage.steps[index:] if stage is not None and index is not None else ()

    def served_step(self, activity_id: int) -> Step | None:
        """The step (current or later) that this placeholder or linked activity serves."""
        key = next((k for k, a in self.placeholders.items() if a == activity_id), None) or self.linked.get(activity_id)
        return next((s for s in self.remaining() if s.key == key), None)

    def satisfied_step(self, activity: ActivityFacts, prefer: Step | None) -> Step | None:
        """The step ``activity`` satisfies: the one it is linked to while it still does (a meeting planned
        for the step counts whenever it ends), else the latest remaining one — if it is not too old."""
        parties = self.state.parties

        def ok(step: Step) -> bool:
            return step.satisfied_by is not None and satisfies(step.satisfied_by, activity, parties)

        if prefer is not None and ok(prefer):
            return prefer
        done, when = activity.status == COMPLETED, activity.at
        if done and self.since is not None and when is not None and when < self.since:
            return None  # happened before the process's last progress
        return next((s for s in reversed(self.remaining()) if ok(s)), None)

    # -- effects ---------------------------------------------------------------------------------------------

    def record(self, step: str | None, result: str | None, activity_id: int | None) -> None:
        self.effects.append(RecordHistory(self.stage, step, result, activity_id, self.automatic))

    def link(self, activity_id: int, key: str) -> None:
        self.linked[activity_id] = key
        self.effects.append(LinkActivity(activity_id, key))

    def unlink(self, activity_id: int) -> None:
        self.linked.pop(activity_id, None)
        self.effects.append(LinkActivity(activity_id, None))

    def close_open(self, result: str, keep: int | None = None) -> None:
        """Cancel the open placeholders and unlink planned activities of the stage (the stage is over)."""
        for activity_id in self.placeholders.values():
            if activity_id != keep:
                self.effects.append(CancelActivity(activity_id, result))
        for activity_id in list(self.linked):
            if activity_id != keep:
                self.unlink(activity_id)
        self.placeholders.clear()
        self.linked.clear()
        self.current = None

    # -- stages --------------------------------------------------------------------------------------------

    def enter(self, name: str, cause: int | None, closing: Closing, *, chosen: bool = False) -> None:
        terminal = self.process.terminal(name)
        _check_closing(name, terminal.requires if terminal else (), terminal.allows if terminal else (), closing)
        self.close_open(RESULT_STAGE_LEFT)
        if chosen and terminal is None and self.status != OPEN:
            self.effects.append(SetClosing(Closing()))  # reopened: the old reasons no longer apply
        self.stage, self.status = name, terminal.status if terminal else OPEN
        self.entered.add(name)
        if terminal is not None:
            if chosen or any(closing.__dict__.values()):
                self.effects.append(SetClosing(closing))
            self.record(None, closing.lost_reason or closing.won_reason, cause)
            return
        self.record(None, None, cause)
        stage = self._stage()
        if not self.state.running or stage is None:
            return  # no process runs: the stage is only recorded
        if stage.set_lead_status:
            self.effects.append(SetLeadStatus(stage.set_lead_status))
        self.open_from(stage, 0, cause)

    def open_from(self, stage: Stage, index: int, cause: int | None) -> None:
        if index >= len(stage.steps):
            self.stage_done(stage, cause)
            return
        self.current = stage.steps[index].key
        for step in open_steps(self.process, stage.name, self.current):
            if step.key not in self.placeholders and step.key not in self.created:
                self.created.add(step.key)
                self.effects.append(CreatePlannedActivity(step.key, step.activity, step.title, step.hints))

    def stage_done(self, stage: Stage, cause: int | None) -> None:
        self.current = None
        if not stage.next:
            return  # the process ends at this stage
        target = stage.next[0]
        terminal = self.process.terminal(target)
        if target in self.entered or (terminal is not None and terminal.requires):
            return  # a person chooses (e.g. a lost reason is needed)
        self.enter(target, cause, Closing())

    def end_stage(self, cause: int | None) -> None:
        self.close_open(RESULT_STAGE_ENDED)
        self.record(None, RESULT_STAGE_ENDED, cause)

    # -- steps ---------------------------------------------------------------------------------------------

    def complete(self, step: Step, result: str, activity_id: int) -> None:
        stage = self._stage()
        assert stage is not None
        remaining = self.remaining()
        for earlier in remaining[: remaining.index(step)]:
            if earlier.optional:
                self.close_step(earlier, RESULT_SKIPPED, activity_id, cancel=True)
            else:
                self.close_step(earlier, earlier.default_result, activity_id, cancel=False)
        if self.placeholders.get(step.key) != activity_id:  # a synced activity: it takes the placeholder's place
            placeholder = self.placeholders.pop(step.key, None)
            if placeholder is not None:
                self.effects.append(SupersedePlaceholder(placeholder, activity_id))
            if self.linked.pop(activity_id, None) != step.key:
                self.effects.append(LinkActivity(activity_id, step.key))
            self.effects.append(CompleteActivity(activity_id, result))
        self.close_step(step, result, activity_id, cancel=False)
        self.consumed.add(activity_id)
        outcome = step.outcome(result)
        index = stage.steps.index(step)
        if outcome.kind == REPEAT:
            self.open_from(stage, index, activity_id)
        elif outcome.kind == BACK:
            self.open_from(stage, stage.index(outcome.target) or 0, activity_id)
        elif outcome.kind == END_STAGE:
            self.end_stage(activity_id)
        else:
            self.open_from(stage, index + 1, activity_id)

    def close_step(self, step: Step, result: str, cause: int | None, *, cancel: bool) -> None:
        """Record a step as done (or skipped): its placeholder follows, its other linked activities unlink."""
        placeholder = self.placeholders.pop(step.key, None)
        if placeholder is not None:
            effect = CancelActivity if cancel else CompleteActivity
            self.effects.append(effect(placeholder, result))
        for activity_id, key in list(self.linked.items()):
            if key == step.key and activity_id != cause:
                self.unlink(activity_id)
        self.record(step.key, result, cause)
        if not cancel and step.lead_status.get(result):
            self.effects.append(SetLeadStatus(step.lead_status[result]))

    def cancel(self, step: Step, activity_id: int) -> None:
        """The activity serving ``step`` was cancelled: the stage ends early (an optional step is skipped)."""
        stage = self._stage()
        assert stage is not None
        placeholder = self.placeholders.pop(step.key, None)
        self.linked.pop(activity_id, None)
        self.effects.append(CancelActivity(activity_id, None if placeholder != activity_id else RESULT_CANCELLED))
        if placeholder is not None and placeholder != activity_id:
            self.effects.append(CancelActivity(placeholder, RESULT_CANCELLED))
        self.record(step.key, RESULT_CANCELLED, activity_id)
        self.consumed.add(activity_id)
        if not step.optional:
            self.end_stage(activity_id)
        elif step.key == self.current:
            self.open_from(stage, stage.steps.index(step) + 1, activity_id)


def _check_closing(name: str, requires: tuple[str, ...], allows: tuple[str, ...], closing: Closing) -> None:
    for name_ in requires:
        if not getattr(closing, name_):
            raise ProcessError(f"{name!r} requires a {name_.replace('_', ' ')}")
    for name_ in CLOSING_FIELDS:
        if getattr(closing, name_) and name_ not in requires + allows:
            raise ProcessError(f"{name!r} does not take a {name_.replace('_', ' ')}")

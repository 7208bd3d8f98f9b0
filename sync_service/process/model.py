"""The process engine's values (SPEC §2): a subject's state, the events it reacts to, the effects it asks for.

All frozen and free of I/O; ``engine.handle`` turns (state, event) into a ``Transition`` of a new state and
effects, and ``store`` applies the effects to the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sync_service.process.satisfy import ActivityFacts, Parties

OPEN = "open"
PLANNED, COMPLETED, CANCELLED = "planned", "completed", "cancelled"
# Results written by the engine itself (history rows and closed placeholders).
RESULT_CANCELLED, RESULT_SKIPPED = "Cancelled", "Skipped"
RESULT_STAGE_LEFT, RESULT_STAGE_ENDED = "Stage left", "Stage ended early"
# Not a transition: a history note that the activity which completed the step was cancelled since
# (``cancelled_after``).
RESULT_CANCELLED_AFTER = "Activity cancelled after completing the step"


@dataclass(frozen=True)
class ProcessState:
    stage: str
    status: str = OPEN
    current_step: str | None = None
    running: bool = False
    since: datetime | None = None  # activities before this moment cannot complete the open steps
    placeholders: tuple[tuple[str, int], ...] = ()  # (step key, planned process activity id), current stage
    linked: tuple[tuple[int, str], ...] = ()  # (planned synced activity id, step key), current stage
    consumed: frozenset[int] = frozenset()  # activities that already completed or cancelled a step
    parties: Parties = field(default_factory=Parties)


@dataclass(frozen=True)
class Closing:
    """Details a terminal stage may require or allow."""

    lost_reason: str | None = None
    won_reason: str | None = None
    competitor: str | None = None


# Events ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    at: datetime
    stage: str | None = None  # None: the process's start stage
    count_history: bool = False  # an existing opportunity: already logged activities may satisfy steps
    automatic: bool = False


@dataclass(frozen=True)
class ChooseStage:
    stage: str
    at: datetime
    closing: Closing = field(default_factory=Closing)


@dataclass(frozen=True)
class CompleteByHand:
    activity_id: int
    at: datetime
    result: str | None = None  # None: the step's default result


@dataclass(frozen=True)
class CancelByHand:
    activity_id: int
    at: datetime


@dataclass(frozen=True)
class ActivitySynced:
    activity: ActivityFacts


Event = Start | ChooseStage | CompleteByHand | CancelByHand | ActivitySynced

# Effects --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatePlannedActivity:
    step: str
    type: str
    title: str
    hints: tuple[str, ...]


@dataclass(frozen=True)
class CompleteActivity:
    activity_id: int
    result: str | None


@dataclass(frozen=True)
class CancelActivity:
    activity_id: int
    result: str | None


@dataclass(frozen=True)
class SupersedePlaceholder:
    """The synced activity ``by`` did what the planned placeholder stood for: the placeholder goes away."""

    activity_id: int
    by: int


@dataclass(frozen=True)
class LinkActivity:
    activity_id: int
    step: str | None  # None: the activity no longer serves a step


@dataclass(frozen=True)
class RecordHistory:
    stage: str
    step: str | None
    result: str | None
    activity_id: int | None
    automatic: bool


@dataclass(frozen=True)
class SetLeadStatus:
    status: str


@dataclass(frozen=True)
class SetClosing:
    closing: Closing


Effect = (
    CreatePlannedActivity
    | CompleteActivity
    | CancelActivity
    | SupersedePlaceholder
    | LinkActivity
    | RecordHistory
    | SetLeadStatus
    | SetClosing
)


@dataclass(frozen=True)
class Transition:
    state: ProcessState
    effects: tuple[Effect, ...] = ()

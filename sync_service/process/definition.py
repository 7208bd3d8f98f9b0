"""Process definitions (SPEC §2): the shipped YAML (or an admin's edited JSON) → frozen dataclasses.

The format, one process per document::

    name: Corporate sale
    applies_to: opportunity            # opportunity | lead
    start_stage: Interest verification
    start_on_lead_status: Awaiting sale  # opportunity processes: a lead reaching this status starts one
    auto_start_on_lead_status: [...]   # lead processes: a lead in one of these statuses gets the process
                                       # started when its first activity is synced
    stages:
      - name: Qualification
        next: [Needs analysis]         # proposed next stages; the first is entered when the steps are done
        set_lead_status: Awaiting sale # lead processes: entering the stage sets the lead's status
        steps:
          - key: qualification.qualify # unique within the process; stored on the opportunity and activities
            title: Qualify the opportunity
            activity: task             # email | meeting | call | task: the planned activity it creates
            optional: false            # an optional step may be skipped by completing a later one
            results: [Qualified, Not qualified]
            default_result: Qualified  # recorded when a synced activity completes the step
            on_result: {Not qualified: end_stage}   # next (default) | repeat | end_stage | {back: STEP KEY}
            lead_status: {Prospect: Prospect}       # lead processes: result → lead status
            hints: ["Budget", "Authority"]
            satisfied_by: {type: [meeting, call], direction: inbound, keywords: [..], has_attachment: true,
                           with_participant: true, with_lead: true, from_owner: true}
    terminal_stages:
      - {name: Closed lost, status: lost, requires: [lost_reason], allows: [competitor]}

``satisfied_by`` is a conjunction (see ``satisfy``): the activity's type is one of ``type``; its ``direction``
when given; one of the ``keywords`` in its subject when given; an attachment when ``has_attachment``; one of
its contacts is a participant of the opportunity when ``with_participant``; it is linked to the lead when
``with_lead``; it was sent (an email) or organised (a meeting or call) by the opportunity's (lead's) owner —
its sender's address is the owner's — when ``from_owner``.

Validation is strict (unknown keys are typos) and every error is one line naming where it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sync_service.process.errors import DefinitionError

ACTIVITY_TYPES = ("email", "meeting", "call", "task")
DIRECTIONS = ("inbound", "outbound")
SUBJECT_KINDS = ("opportunity", "lead")
PLURALS = {"opportunity": "opportunities", "lead": "leads"}
CLOSING_FIELDS = ("lost_reason", "won_reason", "competitor")

NEXT, REPEAT, END_STAGE, BACK = "next", "repeat", "end_stage", "back"


@dataclass(frozen=True)
class SatisfiedBy:
    """What a synced activity must be to complete a step by itself (see ``satisfy``)."""

    types: tuple[str, ...]
    direction: str | None = None
    keywords: tuple[str, ...] = ()
    has_attachment: bool = False
    with_participant: bool = False
    with_lead: bool = False
    from_owner: bool = False


@dataclass(frozen=True)
class Outcome:
    """What a result does after the step completes: ``next`` step, ``repeat`` it, ``end_stage``, ``back``."""

    kind: str = NEXT
    target: str | None = None  # the step key for ``back``


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    activity: str
    results: tuple[str, ...]
    default_result: str
    outcomes: Mapping[str, Outcome] = field(default_factory=dict)
    hints: tuple[str, ...] = ()
    satisfied_by: SatisfiedBy | None = None
    optional: bool = False
    lead_status: Mapping[str, str] = field(default_factory=dict)

    def outcome(self, result: str) -> Outcome:
        return self.outcomes.get(result, Outcome())


@dataclass(frozen=True)
class Stage:
    name: str
    next: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    set_lead_status: str | None = None

    def index(self, key: str | None) -> int | None:
        return next((i for i, s in enumerate(self.steps) if s.key == key), None)


@dataclass(frozen=True)
class TerminalStage:
    name: str
    status: str
    requires: tuple[str, ...] = ()
    allows: tuple[str, ...] = ()


@dataclass(frozen=True)
class Process:
    name: str
    applies_to: str
    start_stage: str
    stages: tuple[Stage, ...]
    terminal_stages: tuple[TerminalStage, ...] = ()
    start_on_lead_status: str | None = None
    auto_start_on_lead_status: tuple[str, ...] = ()

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def terminal(self, name: str) -> TerminalStage | None:
        return next((t for t in self.terminal_stages if t.name == name), None)

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages) + tuple(t.name for t in self.terminal_stages)

    def canonical_stage(self, name: str) -> str | None:
        """The stage's spelling in the definition, for a name given in any case."""
        wanted = name.strip().casefold()
        return next((n for n in self.stage_names if n.casefold() == wanted), None)

    def step(self, key: str | None) -> tuple[Stage, Step] | None:
        for stage in self.stages:
            for step in stage.steps:
                if step.key == key:
                    return stage, step
        return None

    def step_titles(self) -> dict[str, str]:
        return {step.key: step.title for stage in self.stages for step in stage.steps}


class _Where:
    """Builds one-line error messages that say where the problem is."""

    def __init__(self, *parts: str) -> None:
        self.parts = parts

    def at(self, part: str) -> _Where:
        return _Where(*self.parts, part)

    def error(self, message: str) -> DefinitionError:
        return DefinitionError(": ".join((*self.parts, message)))

    def mapping(self, value: object, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(f"expected a mapping, got {type(value).__name__}")
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            raise self.error(f"unknown key {unknown[0]!r} (allowed: {', '.join(allowed)})")
        missing = [k for k in required if value.get(k) in (None, "", [])]
        if missing:
            raise self.error(f"missing {missing[0]!r}")
        return dict(value)

    def text(self, value: object, name: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"{name} must be a non-empty string")
        return value.strip()

    def texts(self, value: object, name: str) -> tuple[str, ...]:
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise self.error(f"{name} must be a list of strings")
        return tuple(self.text(v, name) for v in items)

    def flag(self, value: object, name: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.error(f"{name} must be true or false")
        return value

    def one_of(self, value: str, choices: tuple[str, ...], name: str) -> str:
        if value not in choices:
            raise self.error(f"{name} {value!r} is not one of: {', '.join(choices)}")
        return value


_PROCESS_KEYS = (
    "name",
    "applies_to",
    "description",
    "start_stage",
    "start_on_lead_status",
    "auto_start_on_lead_status",
    "stages",
    "terminal_stages",
)
_STAGE_KEYS = ("name", "next", "steps", "set_lead_status", "description")
_STEP_KEYS = (
    "key",
    "title",
    "activity",
    "optional",
    "results",
    "default_result",
    "on_result",
    "lead_status",
    "hints",
    "satisfied_by",
)
_SATISFY_KEYS = ("type", "direction", "keywords", "has_attachment", "with_participant", "with_lead", "from_owner")
_TERMINAL_KEYS = ("name", "status", "requires", "allows")


def parse_process(data: object) -> Process:
    """Validate a definition dict and build the ``Process``; raises ``DefinitionError`` (one line)."""
    name = data.get("name") if isinstance(data, Mapping) else None
    where = _Where(f"process {name!r}" if isinstance(name, str) else "process")
    raw = where.mapping(data, _PROCESS_KEYS, ("name", "applies_to", "start_stage", "stages"))
    applies_to = where.one_of(where.text(raw["applies_to"], "applies_to"), SUBJECT_KINDS, "applies_to")
    if not isinstance(raw["stages"], list) or not raw["stages"]:
        raise where.error("stages must be a non-empty list")
    stages = tuple(_stage(where, s, applies_to) for s in raw["stages"])
    terminals = tuple(_terminal(where, t) for t in raw.get("terminal_stages") or [])
    process = Process(
        name=where.text(raw["name"], "name"),
        applies_to=applies_to,
        start_stage=where.text(raw["start_stage"], "start_stage"),
        stages=stages,
        terminal_stages=terminals,
        start_on_lead_status=where.text(raw["start_on_lead_status"], "start_on_lead_status")
        if raw.get("start_on_lead_status") is not None
        else None,
        auto_start_on_lead_status=where.texts(raw.get("auto_start_on_lead_status"), "auto_start_on_lead_status"),
    )
    if applies_to == "lead" and (terminals or process.start_on_lead_status):
        raise where.error("a lead process has no terminal_stages or start_on_lead_status (its status is the lead's)")
    if applies_to == "opportunity" and process.auto_start_on_lead_status:
        raise where.error("auto_start_on_lead_status is only for lead processes")
    _check_references(where, process)
    return process


def _stage(where: _Where, data: object, applies_to: str) -> Stage:
    name = data.get("name") if isinstance(data, Mapping) else None
    here = where.at(f"stage {name!r}")
    raw = here.mapping(data, _STAGE_KEYS, ("name",))
    steps = raw.get("steps") or []
    if not isinstance(steps, list):
        raise here.error("steps must be a list")
    lead_status = raw.get("set_lead_status")
    if lead_status is not None and applies_to != "lead":
        raise here.error("set_lead_status is only for lead processes")
    return Stage(
        name=here.text(raw["name"], "name"),
        next=here.texts(raw.get("next"), "next"),
        steps=tuple(_step(here, s, applies_to) for s in steps),
        set_lead_status=here.text(lead_status, "set_lead_status") if lead_status is not None else None,
    )


def _step(where: _Where, data: object, applies_to: str) -> Step:
    key = data.get("key") if isinstance(data, Mapping) else None
    here = where.at(f"step {key!r}")
    raw = here.mapping(data, _STEP_KEYS, ("key", "title", "results"))
    results = here.texts(raw["results"], "results")
    if len(set(results)) != len(results):
        raise here.error("results are listed twice")
    default = here.text(raw.get("default_result") or results[0], "default_result")
    if default not in results:
        raise here.error(f"default_result {default!r} is not one of its results ({', '.join(results)})")
    lead_status = here.mapping(raw.get("lead_status") or {}, results)
    if lead_status and applies_to != "lead":
        raise here.error("lead_status is only for lead processes")
    satisfied = _satisfied_by(here.at("satisfied_by"), raw["satisfied_by"]) if raw.get("satisfied_by") else None
    if satisfied and satisfied.with_participant and applies_to == "lead":
        raise here.error("with_participant needs an opportunity (use with_lead in a lead process)")
    return Step(
        key=here.text(raw["key"], "key"),
        title=here.text(raw["title"], "title"),
        activity=here.one_of(here.text(raw.get("activity") or "task", "activity"), ACTIVITY_TYPES, "activity"),
        results=results,
        default_result=default,
        outcomes={r: _outcome(here.at(f"on_result {r!r}"), v) for r, v in _on_result(here, raw, results).items()},
        hints=here.texts(raw.get("hints"), "hints"),
        satisfied_by=satisfied,
        optional=here.flag(raw.get("optional"), "optional"),
        lead_status={r: here.text(s, "lead_status") for r, s in lead_status.items()},
    )


def _on_result(where: _Where, raw: dict[str, Any], results: tuple[str, ...]) -> dict[str, Any]:
    value = raw.get("on_result") or {}
    if not isinstance(value, Mapping):
        raise where.error("on_result must be a mapping of result → what happens")
    unknown = [str(r) for r in value if r not in results]
    if unknown:
        raise where.error(f"on_result names {unknown[0]!r}, which is not one of its results ({', '.join(results)})")
    return dict(value)


def _outcome(where: _Where, value: object) -> Outcome:
    if isinstance(value, str):
        return Outcome(where.one_of(value, (NEXT, REPEAT, END_STAGE), "outcome"))
    raw = where.mapping(value, (BACK,), (BACK,))
    return Outcome(BACK, where.text(raw[BACK], BACK))


def _satisfied_by(where: _Where, data: object) -> SatisfiedBy:
    raw = where.mapping(data, _SATISFY_KEYS, ("type",))
    types = where.texts(raw["type"], "type")
    for kind in types:
        where.one_of(kind, ACTIVITY_TYPES, "type")
    direction = raw.get("direction")
    return SatisfiedBy(
        types=types,
        direction=where.one_of(where.text(direction, "direction"), DIRECTIONS, "direction") if direction else None,
        keywords=where.texts(raw.get("keywords"), "keywords"),
        has_attachment=where.flag(raw.get("has_attachment"), "has_attachment"),
        with_participant=where.flag(raw.get("with_participant"), "with_participant"),
        with_lead=where.flag(raw.get("with_lead"), "with_lead"),
        from_owner=where.flag(raw.get("from_owner"), "from_owner"),
    )


def _terminal(where: _Where, data: object) -> TerminalStage:
    name = data.get("name") if isinstance(data, Mapping) else None
    here = where.at(f"terminal stage {name!r}")
    raw = here.mapping(data, _TERMINAL_KEYS, ("name", "status"))
    requires = here.texts(raw.get("requires"), "requires")
    allows = here.texts(raw.get("allows"), "allows")
    for value in (*requires, *allows):
        here.one_of(value, CLOSING_FIELDS, "field")
    return TerminalStage(here.text(raw["name"], "name"), here.text(raw["status"], "status"), requires, allows)


def _check_references(where: _Where, process: Process) -> None:
    names = [s.name for s in process.stages] + [t.name for t in process.terminal_stages]
    duplicate = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if duplicate:
        raise where.error(f"stage {duplicate!r} is defined twice")
    if process.stage(process.start_stage) is None:
        raise where.error(f"start_stage {process.start_stage!r} is not one of its (non-terminal) stages")
    keys: set[str] = set()
    for stage in process.stages:
        for target in stage.next:
            if target not in names:
                raise where.error(f"stage {stage.name!r}: next names unknown stage {target!r}")
        stage_keys = {s.key for s in stage.steps}
        for step in stage.steps:
            if step.key in keys:
                raise where.error(f"step key {step.key!r} is used twice")
            keys.add(step.key)
            for result, outcome in step.outcomes.items():
                if outcome.kind == BACK and outcome.target not in stage_keys:
                    raise where.error(
                        f"stage {stage.name!r}: step {step.key!r}: on_result {result!r} goes back to "
                        f"{outcome.target!r}, which is not a step of this stage"
                    )

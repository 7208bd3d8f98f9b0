"""An admin's edits of a stored process definition (SPEC §2): `crm-sync process export NAME` / `load FILE`.

``export_yaml`` prints the stored definition in the shape of the shipped YAML (``sync_service/processes``).
``load_definition`` replaces the stored definition of the process the file names, after checking it whole:

* the file parses as YAML and passes ``parse_process`` (the validator the engine uses);
* it names a process that is already stored (exact spelling) and keeps what it applies to;
* no opportunity or lead running the process is at a stage or step the new definition no longer has (the
  engine would leave it stuck there): the load is refused, naming the stage and how many are in it.

Nothing changes when a check fails. The row's ``shipped_sha256`` is kept: the stored definition no longer hashes
to it, so `crm-sync init` treats the row as edited by a person and keeps it (``crm_store.seed``); loading the
shipped definition again makes the row follow the shipped versions again.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import Activity, Lead, Opportunity, ProcessDefinition
from crm_store.seed import definition_sha256
from sync_service.process import store
from sync_service.process.definition import PLURALS, Process, parse_process
from sync_service.process.errors import DefinitionError, ProcessError
from sync_service.process.model import PLANNED

UNCHANGED, UPDATED, SHIPPED = "unchanged", "updated", "shipped"


@dataclass(frozen=True)
class Loaded:
    name: str
    outcome: str  # unchanged | updated (now an edited copy) | shipped (now the shipped definition again)


def export_yaml(session: Session, name: str) -> str:
    """The stored definition of the process ``name`` (any case) as YAML, ready to edit and load again."""
    row = store.definition_row_named(session, name)
    header = (
        f"# The {row.name} process as stored in the database (SPEC §2). Edit it and load it back with\n"
        "# `crm-sync process load FILE`; sync_service/process/definition.py documents the format.\n"
    )
    body = yaml.safe_dump(row.definition, sort_keys=False, allow_unicode=True, default_flow_style=None, width=120)
    return header + body


def read_definition(path: Path) -> dict[str, Any]:
    """The YAML file's definition, validated whole; raises ``DefinitionError`` (one line) naming the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DefinitionError(f"{path}: not UTF-8 text: {error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise DefinitionError(f"{path}: not valid YAML{where}: {problem}") from None
    try:
        parse_process(data)
    except DefinitionError as error:
        raise DefinitionError(f"{path}: {error}") from None
    assert isinstance(data, dict)  # parse_process accepted it
    try:
        json.dumps(data)
    except (TypeError, ValueError) as error:  # e.g. a date in a description: the column stores JSON
        raise DefinitionError(f"{path}: not plain data (strings, lists, mappings): {error}") from None
    return data


def load_definition(session: Session, path: Path) -> Loaded:
    """Replace the stored definition of the process the file names; raises ``ProcessError`` (one line)."""
    definition = read_definition(path)
    process = parse_process(definition)
    row = store.definition_row_named(session, process.name)
    if row.name != process.name:
        raise ProcessError(f"{path}: names process {process.name!r}, stored as {row.name!r} (a load cannot rename)")
    try:
        current: Process | None = store.parsed_process(row.definition)
    except DefinitionError:
        current = None  # the stored one is broken (edited in SQL): a valid file may replace it
    if current is not None and process.applies_to != current.applies_to:
        raise ProcessError(
            f"{path}: process {row.name!r} applies to {PLURALS[current.applies_to]}, "
            f"the file says {PLURALS[process.applies_to]}"
        )
    if definition_sha256(definition) == definition_sha256(row.definition):
        return Loaded(row.name, UNCHANGED)
    _check_in_use(session, row, current, process)
    row.definition = definition
    session.flush()
    return Loaded(row.name, SHIPPED if definition_sha256(definition) == row.shipped_sha256 else UPDATED)


def _check_in_use(session: Session, row: ProcessDefinition, current: Process | None, process: Process) -> None:
    """Refuse a definition that drops a stage or step (of the ``current`` one; of any, when the stored one is
    broken) where an opportunity or lead running it stands, or that a planned activity of theirs waits for."""
    model: type[Opportunity] | type[Lead] = Lead if process.applies_to == store.LEAD else Opportunity
    stage_column = Lead.process_stage if model is Lead else Opportunity.stage
    kind = process.applies_to

    def subjects(count: int) -> str:
        return f"{count} {kind if count == 1 else PLURALS[kind]} running it {'is' if count == 1 else 'are'}"

    running = select(model.id).where(model.process_id == row.id)
    stages: Counter[str] = Counter()
    steps: Counter[tuple[str, str]] = Counter()
    for stage, step in session.execute(select(stage_column, model.current_step).where(model.process_id == row.id)):
        if stage is None:
            continue
        if (current is None or stage in current.stage_names) and stage not in process.stage_names:
            stages[stage] += 1
        elif step is not None and _in_stage(current, stage, step) and not _in_stage(process, stage, step):
            steps[(stage, step)] += 1
    if stages:
        stage, count = stages.most_common(1)[0]
        raise ProcessError(
            f"the new {row.name} definition has no stage {stage!r}, and {subjects(count)} in that stage "
            "(move them to another stage first)"
        )
    if steps:
        (stage, step), count = steps.most_common(1)[0]
        raise ProcessError(
            f"the new {row.name} definition has no step {step!r} in stage {stage!r}, and {subjects(count)} "
            "at that step (move them to another stage first)"
        )
    link = Activity.lead_id if model is Lead else Activity.opportunity_id
    planned = Counter(
        key
        for key in session.scalars(
            select(Activity.process_step).where(
                link.in_(running), Activity.status == PLANNED, Activity.process_step.is_not(None)
            )
        )
        if (current is None or current.step(key) is not None) and process.step(key) is None
    )
    if planned:
        key, count = planned.most_common(1)[0]
        raise ProcessError(
            f"the new {row.name} definition has no step {key!r}, and {count} planned "
            f"{'activity is' if count == 1 else 'activities are'} waiting for it (complete or cancel them first)"
        )


def _in_stage(process: Process | None, stage: str, step: str) -> bool:
    """Whether ``step`` is a step of ``stage`` (any step may be, in a broken definition: ``None``)."""
    if process is None:
        return True
    found = process.step(step)
    return found is not None and found[0].name == stage

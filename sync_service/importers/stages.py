"""An imported opportunity's default stage and the status its stage implies, read from the processes.

The process definitions (SPEC §2, loaded by ``crm-sync init``) name the start stage and the terminal stages
with their status (``Closed won`` → ``won``) and the closing details they require (``Closed lost`` → a lost
reason). Without any loaded opportunity process the start stage is ``Interest verification``, a stage
``Closed <status>`` whose status is an ``opportunity_status`` lookup value is terminal, and ``Closed lost``
requires a lost reason.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import Lookup, ProcessDefinition
from crm_store.models.sales import OPEN

FALLBACK_START_STAGE = "Interest verification"


class StageRules:
    def __init__(self, session: Session) -> None:
        definitions = [
            d for d in session.scalars(select(ProcessDefinition.definition).order_by(ProcessDefinition.id))
            if isinstance(d, dict) and d.get("applies_to") == "opportunity"
        ]
        self.start_stage: str = next(
            (str(d["start_stage"]) for d in definitions if d.get("start_stage")), FALLBACK_START_STAGE
        )
        self._terminal: dict[str, str] = {}
        self._requires: dict[str, tuple[str, ...]] = {}
        for definition in definitions:
            self._terminal.update(_terminal_stages(definition))
            self._requires.update(_required(definition))
        if not definitions:
            statuses = session.scalars(select(Lookup.value).where(Lookup.kind == "opportunity_status"))
            self._terminal = {f"closed {s}".casefold(): s for s in statuses if s != OPEN}
            self._requires = {"closed lost": ("lost_reason",)}

    def status_for(self, stage: str) -> str:
        """``won`` / ``lost`` / … for a terminal stage, else ``open``."""
        return self._terminal.get(stage.casefold(), OPEN)

    def requires(self, stage: str) -> tuple[str, ...]:
        """The closing details (``lost_reason`` …) a terminal stage requires; () for any other stage."""
        return self._requires.get(stage.casefold(), ())


def _terminal_stages(definition: dict[str, Any]) -> dict[str, str]:
    out = {}
    for entry in definition.get("terminal_stages") or []:
        if isinstance(entry, dict) and entry.get("name") and entry.get("status"):
            out[str(entry["name"]).casefold()] = str(entry["status"])
    return out


def _required(definition: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    out = {}
    for entry in definition.get("terminal_stages") or []:
        if isinstance(entry, dict) and entry.get("name") and isinstance(entry.get("requires"), list):
            out[str(entry["name"]).casefold()] = tuple(str(field) for field in entry["requires"] if field)
    return out

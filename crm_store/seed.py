"""Default lookups (SPEC §1) and the shipped process definitions (SPEC §2). Idempotent.

Lookups are only added. A process definition is added when missing, and replaced by a newer shipped version
only while nobody edited it: each row keeps the sha256 of the shipped definition it was seeded from
(``shipped_sha256``); a row whose definition no longer hashes to it was edited by an admin and is left alone.
Rows seeded before that column existed are recognised by the hashes of the definitions shipped then.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import Lookup, ProcessDefinition

DEFAULT_LOOKUPS: dict[str, tuple[str, ...]] = {
    "lead_status": ("Initial Lead", "Prospect", "Bad Lead", "Awaiting sale", "Converted"),
    "opportunity_status": ("open", "won", "lost", "rerouted", "rejected"),
    "source": ("Expo", "Web form", "Referral", "Business card", "Cold call", "Partner", "Email", "Other"),
    "stage": (
        "Interest verification",
        "Qualification",
        "Needs analysis",
        "Presentation",
        "Id. decision makers",
        "Proposal submission",
        "Negotiations",
        "Contracting",
        "Closed won",
        "Closed lost",
        "Closed rerouted",
        "Closed rejected",
    ),
    "won_reason": ("Price", "Product fit", "Relationship", "Service", "Other"),
    "lost_reason": ("Price", "Competitor", "No budget", "No decision", "Product gap", "Other"),
    "task_type": ("Call", "Meeting", "Email", "Task", "Presentation", "Proposal"),
    "territory": ("North", "South", "East", "West", "EMEA", "Americas", "APAC"),
    "contact_role": ("Decision maker", "Economic buyer", "Technical buyer", "Champion", "User", "Influencer"),
}


# sha256 of definitions shipped before rows remembered theirs (schema 0001): still unedited if they hash to one.
LEGACY_SHIPPED: dict[str, frozenset[str]] = {
    "Corporate sale": frozenset({"c2d77c388e6f8d627bbd5a8fe06dee8d911c8e6e5b59a1aca39ad55bdd655df0"}),
    "Lead management": frozenset({"40127d2b3276294e7297605fbb74db0d1b07c6a11d23ca259f81b1d1aae33acb"}),
}


def definition_sha256(definition: dict[str, Any]) -> str:
    """A hash of the definition's content (key order and YAML formatting do not matter)."""
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def shipped_processes() -> list[dict[str, Any]]:
    """The YAML process definitions packaged with ``sync_service``."""
    folder = resources.files("sync_service").joinpath("processes")
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            out.append(yaml.safe_load(entry.read_text(encoding="utf-8")))
    return out


def seed_defaults(session: Session) -> dict[str, int]:
    """Add missing default lookups and processes; update shipped processes nobody edited."""
    added = {"lookups": 0, "processes": 0, "processes_updated": 0}
    existing = {(k, v) for k, v in session.execute(select(Lookup.kind, Lookup.value))}
    for kind, values in DEFAULT_LOOKUPS.items():
        for position, value in enumerate(values):
            if (kind, value) not in existing:
                session.add(Lookup(kind=kind, value=value, position=position))
                added["lookups"] += 1
    rows = {row.name: row for row in session.scalars(select(ProcessDefinition))}
    for definition in shipped_processes():
        shipped = definition_sha256(definition)
        row = rows.get(definition["name"])
        if row is None:
            session.add(ProcessDefinition(name=definition["name"], definition=definition, shipped_sha256=shipped))
            added["processes"] += 1
        elif row.shipped_sha256 != shipped and _unedited(row):
            row.definition, row.shipped_sha256 = definition, shipped
            added["processes_updated"] += 1
    return added


def _unedited(row: ProcessDefinition) -> bool:
    current = definition_sha256(row.definition)
    if row.shipped_sha256 is not None:
        return current == row.shipped_sha256
    return current in LEGACY_SHIPPED.get(row.name, frozenset())

"""Default lookups (SPEC §1) and the shipped process definitions (SPEC §2). Idempotent: only adds."""

from __future__ import annotations

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


def shipped_processes() -> list[dict[str, Any]]:
    """The YAML process definitions packaged with ``sync_service``."""
    folder = resources.files("sync_service").joinpath("processes")
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            out.append(yaml.safe_load(entry.read_text(encoding="utf-8")))
    return out


def seed_defaults(session: Session) -> dict[str, int]:
    """Add missing default lookups and processes; never overwrite what an admin edited."""
    added = {"lookups": 0, "processes": 0}
    existing = {(k, v) for k, v in session.execute(select(Lookup.kind, Lookup.value))}
    for kind, values in DEFAULT_LOOKUPS.items():
        for position, value in enumerate(values):
            if (kind, value) not in existing:
                session.add(Lookup(kind=kind, value=value, position=position))
                added["lookups"] += 1
    names = set(session.scalars(select(ProcessDefinition.name)))
    for definition in shipped_processes():
        if definition["name"] not in names:
            session.add(ProcessDefinition(name=definition["name"], definition=definition))
            added["processes"] += 1
    return added

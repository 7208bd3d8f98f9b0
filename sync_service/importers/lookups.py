"""Values that must come from a ``Lookup`` list (lead statuses, sources, stages)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import Lookup


class LookupValues:
    """One lookup kind, matched case-insensitively and returned in the lookup's own spelling."""

    def __init__(self, session: Session, kind: str, label: str) -> None:
        rows = session.execute(
            select(Lookup.value).where(Lookup.kind == kind).order_by(Lookup.position, Lookup.id)
        )
        self._values = {value.casefold(): value for (value,) in rows}
        self._label = label

    def resolve(self, cell: str, default: str | None = None) -> str | None:
        """``default`` for an empty cell; ``ValueError`` naming the allowed values for an unknown one."""
        if not cell:
            return default
        value = self._values.get(" ".join(cell.split()).casefold())
        if value is None:
            allowed = ", ".join(self._values.values()) or "none defined — run 'crm-sync init'"
            raise ValueError(f"unknown {self._label} '{cell}' (allowed: {allowed})")
        return value

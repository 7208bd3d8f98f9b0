"""What an import did: how many records it created, updated, or found unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["created", "updated", "unchanged"]


@dataclass(slots=True)
class ImportReport:
    kind: str  # accounts | contacts | leads | opportunities
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged

    def count(self, outcome: Outcome) -> None:
        """Add one record to ``outcome`` (``created`` / ``updated`` / ``unchanged``)."""
        setattr(self, outcome, getattr(self, outcome) + 1)

    def summary(self) -> str:
        return (
            f"{self.kind}: {self.total} rows — {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged"
        )


def apply_fields(record: object, fields: dict[str, object]) -> bool:
    """Set each field whose new value is given (not None) and differs; True when anything changed.

    None means "the file leaves this field alone": an empty cell never erases stored data.
    """
    changed = False
    for name, value in fields.items():
        if value is not None and getattr(record, name) != value:
            setattr(record, name, value)
            changed = True
    return changed


def outcome(changed: bool) -> Outcome:
    return "updated" if changed else "unchanged"

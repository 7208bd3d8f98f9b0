"""What an import did: how many records it created, updated, or found unchanged; how many kept a stage or status
changed in the CRM since the file's last import (``last_import``); which columns of the file it ignored; and, in
words, the changes an admin would not guess from the counts (``notes``): what a row's list no longer naming a
domain or participant took away, open step activities that followed an owner change, a hint after a likely
account rename."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["created", "updated", "unchanged"]
MAX_NOTES = 10  # the summary is one line: a big file's removals are counted beyond these


@dataclass(slots=True)
class ImportReport:
    kind: str  # accounts | contacts | leads | opportunities
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    kept: int = 0  # records whose stage / status, changed in the CRM since the last import, the file left alone
    ignored_columns: tuple[str, ...] = field(default=())
    notes: list[str] = field(default_factory=list)  # "Globex lost domain globex.co", in file order


    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged

    def count(self, outcome: Outcome) -> None:
        """Add one record to ``outcome`` (``created`` / ``updated`` / ``unchanged``)."""
        setattr(self, outcome, getattr(self, outcome) + 1)

    def summary(self) -> str:
        line = (
            f"{self.kind}: {self.total} rows — {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged"
        )
        if self.kept:
            field_name = "stage" if self.kind == "opportunities" else "status"
            line += f"; {self.kept} kept the {field_name} set in the CRM since the file's last import"
        if self.ignored_columns:
            line += f"; columns ignored: {', '.join(self.ignored_columns)}"
        shown = self.notes[:MAX_NOTES]
        if shown:
            line += "; " + "; ".join(shown)
        if len(self.notes) > len(shown):
            line += f"; and {len(self.notes) - len(shown)} more changes like these"
        return line


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

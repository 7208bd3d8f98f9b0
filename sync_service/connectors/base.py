"""The one interface every source implements.

A connector knows nothing of the database. The pipeline drives it in two phases per folder:

1. ``list_changes(folder, cursor)`` → a ``ChangePage``: references to new/changed items, external ids that
   were deleted, and the cursor that is valid once *this page* is stored. ``more`` says another page follows.
2. ``fetch(folder, refs)`` → the raw bytes of those items.

The pipeline stores a page's items and its ``next_cursor`` in one transaction, so a crash between pages
re-lists from the last stored cursor: nothing lost, and idempotent writes mean nothing doubled.
Cursors are opaque strings owned by the connector.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

ItemKind = Literal["message", "calendar", "contacts"]


@dataclass(frozen=True, slots=True)
class ItemRef:
    """A pointer to one item in a source folder. ``external_id`` is stable for the item in that folder."""

    external_id: str
    kind: ItemKind
    version: str = ""  # changes when the item changes (mtime, etag, change key); "" when unknown


@dataclass(frozen=True, slots=True)
class RawItem:
    ref: ItemRef
    data: bytes


@dataclass(frozen=True, slots=True)
class ChangePage:
    upserts: tuple[ItemRef, ...]
    deletes: tuple[str, ...]  # external ids gone from the folder
    next_cursor: str
    more: bool = False
    full_resync: bool = field(default=False)  # the source invalidated earlier state (e.g. UIDVALIDITY)


@runtime_checkable
class Connector(Protocol):
    """A configured source. Instances are cheap; network connections open lazily and close in ``close``."""

    def folders(self) -> Sequence[str]:
        """The folders to sync, in order (e.g. ``["INBOX", "Sent"]`` or ``["."]`` for a flat directory)."""
        ...

    def list_changes(self, folder: str, cursor: str | None, limit: int = 500) -> ChangePage:
        """Changes since ``cursor`` (``None``: everything), at most ``limit`` upserts per page."""
        ...

    def fetch(self, folder: str, refs: Sequence[ItemRef]) -> Iterator[RawItem]:
        """Raw bytes of ``refs``. An item that vanished meanwhile is simply not yielded."""
        ...

    def close(self) -> None:
        ...

"""What one processing run carries: the session, the candidate index, the clock, the counters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from crm_store.blobs import BlobStore
from sync_service.config import Settings
from sync_service.matching.model import CandidateIndex
from sync_service.values import SyncWindow

if TYPE_CHECKING:
    from crm_store.models import Activity
    from sync_service.pipeline.advance import AdvanceScope
    from sync_service.pipeline.batch import BatchCache
    from sync_service.pipeline.bulk import PendingEmail


@dataclass
class ProcessStats:
    logged: int = 0  # activities created
    updated: int = 0  # activities whose fields or links changed (moved / cancelled meetings, new links)
    duplicates: int = 0  # items already known (same Message-ID / UID in another mailbox)
    quarantined: int = 0
    cancelled: int = 0
    contacts_created: int = 0
    leads_created: int = 0
    contacts_from_cards: int = 0  # contacts an address book created or changed: re-matching follows
    replies: int = 0  # replies stored before the message they answer, which is stored now (``awaited``)
    leads_converted: int = 0  # leads the process engine made an opportunity of: re-matching follows
    skipped: Counter[str] = field(default_factory=Counter)
    more: bool = False  # the run stopped at the end of its time slice: items may be left pending

    def merge(self, other: ProcessStats) -> None:
        for name in (
            "logged",
            "updated",
            "duplicates",
            "quarantined",
            "cancelled",
            "contacts_created",
            "leads_created",
            "contacts_from_cards",
            "replies",
            "leads_converted",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped.update(other.skipped)  # a batch may take back a skip an earlier batch counted (``emails``)
        for reason in [reason for reason, count in self.skipped.items() if not count]:
            del self.skipped[reason]

    def as_dict(self) -> dict[str, object]:
        return {
            "logged": self.logged,
            "updated": self.updated,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "cancelled": self.cancelled,
            "contacts_created": self.contacts_created,
            "leads_created": self.leads_created,
            "skipped": dict(sorted(self.skipped.items())),
        }


@dataclass
class ProcessContext:
    session: Session
    settings: Settings
    blobs: BlobStore
    index: CandidateIndex
    now: datetime
    window: SyncWindow
    stats: ProcessStats
    owner_email: str  # the rep whose mailbox the current raw item came from
    owner_id: int
    batch: BatchCache | None = None  # the optimistic pass's prefetched rows (None: ask the database)
    advancing: AdvanceScope | None = None  # None: every activity goes to the process engine
    deferred: list[Activity | PendingEmail] | None = None  # a batch's new emails waiting for the process engine

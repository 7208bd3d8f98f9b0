"""Which skipped mail a purge removes, and what it leaves of it (``crm-sync purge skipped``): pure decisions over
plain rows (``sync_service.purge`` reads and writes them).

Mail skipped by SPEC §3 step 1 (all-internal, bulk, never-log, no participant resolves: private mail) is never
logged, but its bytes and matching facts are kept so that re-matching can log it once CRM data lifts its skip
(§3.7). After the retention (``CRM_SKIPPED_RETENTION_DAYS``, or ``--older-than DAYS``) a purge removes both:

- the synced item stays, for its dedupe key — what makes another copy of the message the same item, so nothing
  is doubled — with skip reason ``purged``; its facts are replaced by a note of when it was purged and what it
  had been skipped as (``purged_facts``), its subject, conversation and bytes' hash are cleared; its Message-ID
  stays (the dedupe key holds it anyway). Re-matching looks only at the skips CRM data can lift: it never reads
  a purged item again, so a purged email is not logged even once its sender becomes a contact (its bytes are
  gone) — unless a copy of it is fetched again (see below);
- each raw item carrying it (one per mailbox folder) stays with its hash, in state ``purged``: an incremental
  or full sync that lists the message again recognises it (same mailbox, folder, id and bytes) and leaves it
  alone; the processing and any reprocessing of processed (``done``) items never select it;
- its bytes are then referenced by no row, and the compaction (``crm_store.compact``) drops them.

A copy of a purged email fetched later under a new id (another mailbox, a folder whose ids were reset:
UIDVALIDITY) is processed as any copy is: it is logged if it qualifies now, else the item keeps its facts and
bytes again as a skipped item, and the retention counts from that copy.

Age: an item is older than the retention when its newest copy was fetched (``raw_items.received_at``) and the
item was made longer ago than that — not by its Date header: mail that a first sync fetched is kept the whole
retention however old it is, so that contacts imported after that sync can still lift its skip.

Never purged: an email with an activity (so never one that another mailbox's copy logged: that is the same
item), calendar items, and an item one of whose copies is quarantined, waiting for processing, or carries
another item too (its decision is not final, or the copy is not only this mail). A purged item's copies that
were processed after it was purged (a copy processed while it was purged) are purged by the next run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm_store.models.sync import DELETED, DONE, QUARANTINED

PURGED = "purged"  # SyncedItem.skip_reason and RawItem.state of a skipped email whose bytes and facts are gone
RELEASED_STATES = (PURGED,)  # raw item states that refer to no stored bytes (``crm_store.compact``)

KEPT_QUARANTINED = "a copy is quarantined"
KEPT_WAITING = "a copy waits for processing"
KEPT_SHARED = "a copy carries another item too"
KEPT_YOUNG = "synced within the retention"


@dataclass(frozen=True, slots=True)
class Copy:
    """One raw item that carries a skipped email (a mailbox folder's copy of it)."""

    raw_id: int
    sha256: str | None
    state: str
    processed: bool  # processed_at is set
    received_at: datetime
    quarantined: bool  # it has a quarantine entry
    shared: bool  # it carries another synced item too


@dataclass(frozen=True, slots=True)
class Candidate:
    """A skipped email (or a purged one with copies not purged yet) with its copies."""

    item_id: int
    skip_reason: str
    created_at: datetime
    sha256: str | None  # the bytes of the copy whose facts it keeps
    copies: tuple[Copy, ...]

    @property
    def synced_at(self) -> datetime:
        """When it was last synced: its newest copy's fetch, or when the item was made if that is later."""
        return max([self.created_at, *(c.received_at for c in self.copies)])


@dataclass(frozen=True, slots=True)
class Verdict:
    purge_item: bool  # the item's facts go
    raw_ids: tuple[int, ...] = ()  # copies whose bytes go (state ``purged``)
    kept: str | None = None  # why the item stays as it is


def judge(candidate: Candidate, cutoff: datetime) -> Verdict:
    """What a purge with this cutoff does to one candidate."""
    for copy in candidate.copies:
        if copy.quarantined or copy.state == QUARANTINED:
            return Verdict(False, kept=KEPT_QUARANTINED)
        if not _settled(copy):
            return Verdict(False, kept=KEPT_WAITING)
        if copy.shared:
            return Verdict(False, kept=KEPT_SHARED)
    releasable = tuple(c.raw_id for c in candidate.copies if c.state != PURGED)
    if candidate.skip_reason == PURGED:  # copies processed after it was purged
        return Verdict(False, releasable)
    if candidate.synced_at >= cutoff:
        return Verdict(False, kept=KEPT_YOUNG)
    return Verdict(True, releasable)


def _settled(copy: Copy) -> bool:
    """Processed, and not to be processed again: its bytes are no longer needed by the pipeline."""
    return copy.state == PURGED or (copy.state in (DONE, DELETED) and copy.processed)


def purged_facts(skip_reason: str, at: datetime) -> dict[str, Any]:
    """What a purged item keeps in place of its facts: enough for ``facts_from_json`` to read, nothing to match."""
    return {"kind": "email", PURGED: {"at": at.isoformat(), "skip_reason": skip_reason}}

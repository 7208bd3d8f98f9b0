"""Is a copy of a meeting older than the version its activity shows? (SPEC §3, §4: one meeting in several
calendars is one activity, and a moved event moves it — a stale copy must not move it back.)

Pure: no I/O, no database. SEQUENCE orders versions first (``events.upsert_event``). Many calendars do not bump
it when a meeting is moved, so when two copies have the same SEQUENCE their modification stamps decide:

- LAST-MODIFIED against LAST-MODIFIED when both copies carry it;
- else DTSTAMP against DTSTAMP, only when neither copy carries LAST-MODIFIED. A copy that has LAST-MODIFIED is
  usually an export whose DTSTAMP is the time of the download (Google, Outlook): that says nothing about the
  meeting. Without METHOD, RFC 5545 makes DTSTAMP the same as LAST-MODIFIED (the Exchange and Graph connectors
  write it so); an invitation's DTSTAMP is when it was sent (RFC 5546 orders equal SEQUENCEs by it);
- a stamp missing on either side: no opinion, the copy applies (as before).

Only a copy from another mailbox than the one that wrote the stored version can be stale: a calendar's own
copy is what that calendar holds now, even if its clock went back (a restored backup, a re-generated export).
Nor is anything stale against an item every source dropped (``deleted_at_source``): a copy that comes back
revives it, as before. A copy that is strictly older is stale; an equal stamp applies (the same version).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sync_service.values import CalendarEvent

KEY = "version"  # where ``SyncedItem.facts`` keeps the stamps of the version its activity shows


@dataclass(frozen=True, slots=True)
class Version:
    """Where a copy of an event came from, and its modification stamps (UTC)."""

    mailbox_id: int | None
    last_modified: datetime | None = None
    dtstamp: datetime | None = None


def is_stale(copy: Version, stored: Version | None, *, deleted_at_source: bool = False) -> bool:
    """True when ``copy`` (with the same SEQUENCE as the stored version) is strictly older than ``stored`` and
    comes from another mailbox: it must not overwrite the stored version."""
    if stored is None or deleted_at_source or copy.mailbox_id == stored.mailbox_id:
        return False
    if copy.last_modified is not None and stored.last_modified is not None:
        return copy.last_modified < stored.last_modified
    if copy.last_modified is not None or stored.last_modified is not None:
        return False  # on one side only: the other side's DTSTAMP may be an export time
    return copy.dtstamp is not None and stored.dtstamp is not None and copy.dtstamp < stored.dtstamp


def version_of(event: CalendarEvent, mailbox_id: int | None) -> Version:
    """The version of a parsed event as seen in a mailbox."""
    return Version(mailbox_id, _utc(event.last_modified), _utc(event.dtstamp))


def to_json(version: Version) -> dict[str, Any]:
    return {
        "mailbox_id": version.mailbox_id,
        "last_modified": _iso(version.last_modified),
        "dtstamp": _iso(version.dtstamp),
    }


def from_json(value: object) -> Version | None:
    """The stored version (``None``: none kept, e.g. an item written before the stamps were kept)."""
    if not isinstance(value, dict):
        return None
    mailbox_id = value.get("mailbox_id")
    return Version(
        mailbox_id if isinstance(mailbox_id, int) else None,
        _parse(value.get("last_modified")),
        _parse(value.get("dtstamp")),
    )


def _utc(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return _utc(datetime.fromisoformat(value))
    except ValueError:
        return None

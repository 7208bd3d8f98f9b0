"""The state behind the loopback EWS server (``tests/support/ews_server.py``): mailboxes, folders, items,
recurring series and sync states.

It models what the EWS documentation describes, not Exchange internals:

- SyncFolderItems ("Synchronize items by using EWS in Exchange", "SyncFolderItems operation"): a sync state
  names a snapshot of the folder (item id → change key, read flag). A request diffs the folder against it,
  returns at most ``MaxChangesReturned`` changes — Create, Update, Delete, ReadFlagChange — and a new sync state
  covering exactly the changes returned; ``IncludesLastItemInRange`` says whether more follow. An unknown or
  invalidated state is ``ErrorInvalidSyncStateData``.
- Calendar folders ("Get appointments and meetings by using EWS in Exchange", "Access a recurring series by
  using EWS in Exchange"): a folder holds single items and recurring masters; a CalendarView expands masters
  (on the wall clock of the meeting's time zone: a series at local midnight stays there across DST changes)
  into ``Occurrence`` and ``Exception`` items (modified occurrences), leaves deleted occurrences out and never
  returns the master itself. Changing an occurrence changes its master (occurrences are stored as attachments
  of the master), so SyncFolderItems reports an Update of the master.
"""

from __future__ import annotations

import base64
import itertools
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo

from exchangelib import EWSTimeZone
from exchangelib.errors import UnknownTimeZone

Kind = Literal["message", "calendar", "contact"]
FOLDERS = ("root", "msgfolderroot", "inbox", "sentitems", "calendar", "contacts")


@dataclass
class Event:
    """A single appointment / meeting, or the master of a series (``every`` and ``count`` set)."""

    uid: str
    subject: str
    start: datetime
    end: datetime
    organizer: str
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    location: str = ""
    categories: tuple[str, ...] = ()
    body: str = ""
    cancelled: bool = False
    all_day: bool = False
    timezone: str = "UTC"  # the Windows time zone id of the meeting (StartTimeZone / EndTimeZone)
    sequence: int = 0
    every: timedelta | None = None
    count: int = 0
    exceptions: dict[int, dict[str, Any]] = field(default_factory=dict)  # 1-based index → changed fields
    deleted: set[int] = field(default_factory=set)  # 1-based indexes of deleted occurrences


@dataclass
class Person:
    """An Outlook contact. ``phones`` are (EWS PhoneNumberKey, number) pairs, e.g. ("BusinessPhone", "+1 …")."""

    given: str = ""
    middle: str = ""
    surname: str = ""
    display: str = ""
    company: str = ""
    job_title: str = ""
    emails: tuple[str, ...] = ()
    phones: tuple[tuple[str, str], ...] = ()


@dataclass
class Item:
    id: str
    mailbox: str
    folder: str
    kind: Kind
    changekey: int = 1
    is_read: bool = False
    mime: bytes = b""
    event: Event | None = None
    person: Person | None = None
    modseq: int = 0


@dataclass(frozen=True)
class View:
    """One calendar item as EWS returns it: a single item, or an occurrence / exception of a series."""

    id: str
    changekey: str
    type: str  # Single | Occurrence | Exception
    event: Event  # the effective values (exception fields applied)
    original_start: datetime | None = None


@dataclass(frozen=True)
class Change:
    type: str  # Create | Update | Delete | ReadFlagChange
    item_id: str
    changekey: str = ""
    is_read: bool = False


class InvalidSyncState(Exception):
    """The sync state is unknown to the server (never issued, or invalidated)."""


class EwsStore:
    """Every mailbox the server knows. Ids are opaque base64 strings, unique across mailboxes."""

    def __init__(self) -> None:
        self.items: dict[str, Item] = {}
        self._seq = itertools.count(1)
        self._states: dict[str, dict[str, tuple[str, bool]]] = {}
        self._state_owner: dict[str, tuple[str, str]] = {}

    # --- ids ---------------------------------------------------------------------------------------------

    @staticmethod
    def folder_id(mailbox: str, name: str) -> str:
        return base64.b64encode(f"AAMkFolder:{mailbox}:{name}".encode()).decode()

    @staticmethod
    def parse_folder_id(folder_id: str) -> tuple[str, str] | None:
        try:
            tag, mailbox, name = base64.b64decode(folder_id).decode().split(":", 2)
        except (ValueError, UnicodeDecodeError):
            return None
        return (mailbox, name) if tag == "AAMkFolder" and name in FOLDERS else None

    @staticmethod
    def _occurrence_id(master_id: str, index: int) -> str:
        return base64.b64encode(f"AAMkOccurrence:{master_id}:{index}".encode()).decode()

    # --- changing the mailbox (the test's side) ------------------------------------------------------------

    def _new_id(self, mailbox: str) -> str:
        return base64.b64encode(f"AAMkItem:{mailbox}:{secrets.token_hex(8)}".encode()).decode()

    def _touch(self, item: Item) -> None:
        item.modseq = next(self._seq)

    def add(self, mailbox: str, folder: str, kind: Kind, **values: Any) -> str:
        item = Item(id=self._new_id(mailbox), mailbox=mailbox, folder=folder, kind=kind, **values)
        self._touch(item)
        self.items[item.id] = item
        return item.id

    def update(self, item_id: str, **values: Any) -> None:
        """Change an item: a new change key. ``event=`` / ``person=`` / ``mime=`` replace the content."""
        item = self.items[item_id]
        for name, value in values.items():
            setattr(item, name, value)
        item.changekey += 1
        self._touch(item)

    def update_event(self, item_id: str, **values: Any) -> None:
        event = self.items[item_id].event
        assert event is not None
        self.update(item_id, event=replace(event, **values))

    def set_read(self, item_id: str, is_read: bool = True) -> None:
        """Only the read flag: SyncFolderItems reports a ReadFlagChange, the change key stays."""
        item = self.items[item_id]
        item.is_read = is_read
        self._touch(item)

    def delete(self, item_id: str) -> None:
        del self.items[item_id]

    def invalidate_sync_states(self) -> None:
        self._states.clear()
        self._state_owner.clear()

    # --- reading (the server's side) ---------------------------------------------------------------------

    def folder_items(self, mailbox: str, folder: str) -> list[Item]:
        found = [i for i in self.items.values() if i.mailbox == mailbox and i.folder == folder]
        return sorted(found, key=lambda i: i.modseq)

    def sync(self, mailbox: str, folder: str, state: str | None, max_changes: int) -> tuple[list[Change], str, bool]:
        """(changes, new sync state, includes last item in range) — see the module docstring."""
        if state:
            if self._state_owner.get(state) != (mailbox, folder):
                raise InvalidSyncState(state)
            known = dict(self._states[state])
        else:
            known = {}
        current = self.folder_items(mailbox, folder)
        present = {i.id for i in current}
        changes = [Change("Delete", gone) for gone in sorted(known) if gone not in present]
        for item in current:
            before = known.get(item.id)
            key = f"CQAAAB{item.changekey}"
            if before is None:
                changes.append(Change("Create", item.id, key, item.is_read))
            elif before[0] != key:
                changes.append(Change("Update", item.id, key, item.is_read))
            elif before[1] != item.is_read:
                changes.append(Change("ReadFlagChange", item.id, key, item.is_read))
        page = changes[: max(1, max_changes)]
        for change in page:
            if change.type == "Delete":
                known.pop(change.item_id, None)
            else:
                known[change.item_id] = (change.changekey, change.is_read)
        token = base64.b64encode(b"H4sIAAAAAAAEAO29B2AcSZYlJi9t" + secrets.token_bytes(12)).decode()
        self._states[token], self._state_owner[token] = known, (mailbox, folder)
        return page, token, len(page) == len(changes)

    def calendar_view(self, mailbox: str, folder: str, start: datetime, end: datetime) -> list[View]:
        """Singles, occurrences and exceptions overlapping [start, end), by start time (masters never)."""
        views: list[View] = []
        for item in self.folder_items(mailbox, folder):
            if item.event is None:
                continue
            views.extend(v for v in self.expand(item) if v.event.end > start and v.event.start < end)
        return sorted(views, key=lambda v: (v.event.start, v.id))

    def expand(self, item: Item) -> list[View]:
        event = item.event
        assert event is not None
        changekey = f"DwAAAB{item.changekey}"
        if event.every is None:
            return [View(item.id, changekey, "Single", event)]
        views = []
        for index in range(1, event.count + 1):
            if index in event.deleted:
                continue
            original = _wall_clock_step(event.start, event.every * (index - 1), event.timezone)
            changed = event.exceptions.get(index, {})
            occurrence = replace(
                event,
                start=original,
                end=_wall_clock_step(event.end, event.every * (index - 1), event.timezone),
                every=None,
                count=0,
                exceptions={},
                deleted=set(),
            )
            occurrence = replace(occurrence, **changed)
            kind = "Exception" if changed else "Occurrence"
            views.append(View(self._occurrence_id(item.id, index), changekey, kind, occurrence, original))
        return views

    def lookup(self, item_id: str) -> Item | View | None:
        """A stored item, or the occurrence an occurrence id names."""
        if item_id in self.items:
            return self.items[item_id]
        try:
            tag, master_id, _index = base64.b64decode(item_id).decode().rsplit(":", 2)
        except (ValueError, UnicodeDecodeError):
            return None
        master = self.items.get(master_id)
        if tag != "AAMkOccurrence" or master is None or master.event is None:
            return None
        return next((v for v in self.expand(master) if v.id == item_id), None)


def _wall_clock_step(value: datetime, step: timedelta, timezone: str) -> datetime:
    """``value`` moved by ``step`` on the wall clock of the meeting's time zone (a Windows id), as Exchange
    expands a series: a weekly meeting at local midnight stays at local midnight across a DST change. A zone
    exchangelib does not know (a "Customized Time Zone") steps in UTC."""
    try:
        zone: tzinfo = ZoneInfo(EWSTimeZone.from_ms_id(timezone).key) if timezone != "UTC" else UTC
    except UnknownTimeZone:
        zone = UTC
    local = value.astimezone(zone).replace(tzinfo=None) + step
    return local.replace(tzinfo=zone).astimezone(UTC)

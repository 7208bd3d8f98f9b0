"""Value objects that flow through the pipeline: what parsers produce and matching consumes.

They are plain frozen dataclasses with no I/O and no database types, so parsers and matching stay pure.
All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Address:
    """An email address. ``email`` is lower-cased (domain IDNA-decoded to Unicode, lower-case)."""

    email: str
    name: str = ""

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]


@dataclass(frozen=True, slots=True)
class MessageHeaders:
    """What matching needs from an email; parsed from the headers alone (cheap)."""

    message_id: str | None  # without angle brackets; None when the message has none
    subject: str
    date: datetime | None
    from_: tuple[Address, ...]
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    sender: Address | None = None
    in_reply_to: tuple[str, ...] = ()  # message ids, no angle brackets
    references: tuple[str, ...] = ()
    conversation_id: str | None = None  # Outlook Thread-Index root (base64 of its first 22 bytes)
    automated_reason: str | None = None  # e.g. "List-Unsubscribe header", "Auto-Submitted: auto-replied"
    content_type: str = "text/plain"
    has_calendar: bool = False  # a text/calendar part is announced in the headers (method invitations)

    @property
    def sender_address(self) -> Address | None:
        return self.from_[0] if self.from_ else self.sender

    @property
    def recipients(self) -> tuple[Address, ...]:
        return self.to + self.cc + self.bcc


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str  # already made safe: base name only, no control chars, length capped
    media_type: str
    data: bytes
    inline: bool = False
    content_id: str | None = None


@dataclass(frozen=True, slots=True)
class MessageBody:
    """The expensive part of a message: decoded only for items that are logged."""

    text: str
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    calendar_parts: tuple[bytes, ...] = ()  # raw text/calendar parts (invitations / cancellations)
    problems: tuple[str, ...] = ()  # parts that were dropped (over the size limit, undecodable), one line each


@dataclass(frozen=True, slots=True)
class CalendarEvent:
    """One meeting or call occurrence. Recurring series are expanded into one event per occurrence."""

    uid: str
    recurrence_id: str | None  # ISO 8601 UTC of the occurrence's original start; None for single events
    summary: str
    start: datetime
    end: datetime
    all_day: bool = False
    location: str = ""
    description: str = ""
    categories: tuple[str, ...] = ()
    organizer: Address | None = None
    attendees: tuple[Address, ...] = ()
    cancelled: bool = False
    sequence: int = 0
    method: str | None = None  # iTIP METHOD of the calendar object (REQUEST, CANCEL, PUBLISH…)
    # Modification stamps (UTC) when the object carries them: they order copies with the same SEQUENCE
    # (``pipeline.staleness``). Many exports set DTSTAMP to the time of the download.
    last_modified: datetime | None = None
    dtstamp: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.uid}|{self.recurrence_id or ''}"


@dataclass(frozen=True, slots=True)
class ContactCard:
    """A person from a vCard, an Outlook contacts folder or a CSV row."""

    full_name: str
    first_name: str = ""
    middle_name: str = ""
    last_name: str = ""
    company: str = ""
    job_title: str = ""
    emails: tuple[str, ...] = ()
    phones: tuple[tuple[str, str], ...] = ()  # (kind, number as written)
    uid: str | None = None


@dataclass(frozen=True, slots=True)
class SyncWindow:
    """The span of calendar time that is synced (SPEC §4: default 90 days back, 180 ahead)."""

    start: datetime
    end: datetime

    @classmethod
    def around(cls, now: datetime, days_back: int = 90, days_ahead: int = 180) -> SyncWindow:
        return cls(now - timedelta(days=days_back), now + timedelta(days=days_ahead))


@dataclass(frozen=True, slots=True)
class ParsedCalendar:
    events: tuple[CalendarEvent, ...]
    method: str | None = None
    problems: tuple[str, ...] = field(default=())  # per-component problems that were skipped, one line each
    # What was read with a guess, nothing left out (an unknown time zone read as UTC): reported like problems,
    # but the events are all there, so the item is still a whole snapshot of its calendar.
    notes: tuple[str, ...] = field(default=())
    # The UIDs of the recurring series that were expanded (inside the window given to the parser), with or
    # without occurrences in it: their occurrences change as the window slides (``pipeline.series``).
    series: tuple[str, ...] = field(default=())

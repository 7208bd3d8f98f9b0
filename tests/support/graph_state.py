"""The mailbox data and delta-query engine behind the fake Microsoft Graph server (``graph_server.py``).

What it keeps, per mailbox: mail folders (``inbox``, ``sentitems``) of MIME messages, the primary calendar as
event *instances* (single events, occurrences and exceptions of series, as ``calendarView`` lists them), and
the default contacts folder. Every change bumps a global change number; a delta round is the ordered list of
ids changed since its start token, paged by ``Prefer: odata.maxpagesize``.

JSON shapes follow Microsoft's documentation:
- messages, ``@odata.nextLink`` / ``@odata.deltaLink`` with ``$skiptoken`` / ``$deltatoken`` and ``@removed``
  entries: "Get incremental changes to messages in a folder" (learn.microsoft.com/graph/delta-query-messages);
- events in a calendar view, including ``@removed`` for events deleted or moved outside the range:
  "event: delta" (graph/api/event-delta) and "Get incremental changes to events in a calendar view"
  (graph/delta-query-events); event properties from the "event resource type" page — ``iCalUId`` is the
  PidLidGlobalObjectId in hex and differs per occurrence ([MS-OXOCAL] 2.2.1.27 layout);
- contacts: "contact: delta" (graph/api/contact-delta) and the "contact resource type" page;
- ids: "Obtain immutable identifiers for Outlook resources" — the ``Prefer: IdType="ImmutableId"`` header
  selects ids that survive moves; without it a folder-dependent REST id is returned.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.utils import getaddresses
from typing import Any

GOID_CLASS = bytes.fromhex("040000008200E00074C5B7101A82E008")
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


def graph_time(moment: datetime) -> str:
    """A ``dateTimeTimeZone.dateTime`` as Graph writes it: ``2016-12-09T20:30:00.0000000`` (UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000")


def offset_time(moment: datetime) -> str:
    """An ``Edm.DateTimeOffset``: ``2014-01-01T00:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_offset(value: str) -> datetime:
    """A query-string date-time (``2016-12-01T00:00:00Z``, ``2015-11-08T19:00:00.0000000``: UTC assumed)."""
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # .NET writes 7 fraction digits; Python reads at most 6
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def global_object_id(created: datetime, instance: date | None, external_uid: str | None, seed: bytes) -> str:
    """PidLidGlobalObjectId in hex: class id, instance date (YH YL M D, zero for a master), creation FILETIME,
    8 reserved bytes, data size and data — ``vCal-Uid`` + the UID for meetings that came from iCalendar."""
    day = bytes([instance.year >> 8, instance.year & 0xFF, instance.month, instance.day]) if instance else bytes(4)
    filetime = int((created - _FILETIME_EPOCH).total_seconds() * 10_000_000).to_bytes(8, "little")
    data = b"vCal-Uid\x01\x00\x00\x00" + external_uid.encode() + b"\x00" if external_uid else seed[:16]
    return (GOID_CLASS + day + filetime + bytes(8) + len(data).to_bytes(4, "little") + data).hex().upper()


@dataclass
class Item:
    """One message, event instance or contact; ``body`` is its Graph JSON without the id."""

    immutable_id: str
    body: dict[str, Any]
    seq: int
    mime: bytes | None = None
    deleted: bool = False
    span: tuple[datetime, datetime] | None = None  # events: start, end (UTC)
    series: str | None = None  # occurrences: the series master's id
    original: datetime | None = None  # occurrences: originalStart


@dataclass
class Collection:
    name: str  # "inbox", "sentitems", "calendar", "contacts"
    items: dict[str, Item] = field(default_factory=dict)


@dataclass
class Round:
    """One delta round: the ids to return (fixed at its start), and the token that starts the next round."""

    mailbox: str
    collection: str
    ids: list[str]
    snapshot: int
    window: tuple[datetime, datetime] | None
    select: str | None


@dataclass
class Mailbox:
    upn: str
    name: str
    collections: dict[str, Collection] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("inbox", "sentitems", "calendar", "contacts"):
            self.collections.setdefault(name, Collection(name))


class GraphState:
    """All mailboxes, items, and the server-side delta state (skip / delta tokens)."""

    def __init__(self) -> None:
        self.mailboxes: dict[str, Mailbox] = {}
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self.last_seq = 0
        self.skip_tokens: dict[str, tuple[Round, int]] = {}  # token → (round, offset)
        self.delta_tokens: dict[str, tuple[str, str, int, tuple[datetime, datetime] | None, str | None]] = {}

    # --- building data -----------------------------------------------------------------------------------

    def mailbox(self, upn: str, name: str = "") -> Mailbox:
        key = upn.lower()
        if key not in self.mailboxes:
            self.mailboxes[key] = Mailbox(key, name or key.partition("@")[0].title())
        return self.mailboxes[key]

    def _bump(self) -> int:
        self.last_seq = next(self._seq)
        return self.last_seq

    def new_id(self) -> str:
        raw = hashlib.sha256(f"item-{next(self._ids)}-{secrets.token_hex(4)}".encode()).digest()
        return "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A" + base64.urlsafe_b64encode(raw[:24]).decode()

    def put(self, upn: str, collection: str, item_id: str | None, body: dict[str, Any], **extra: Any) -> Item:
        """Create or replace an item; its change key and change number move on."""
        coll = self.mailbox(upn).collections[collection]
        item_id = item_id or self.new_id()
        seq = self._bump()
        body = {**body, "changeKey": base64.b64encode(f"ck-{seq}".encode()).decode()}
        body["lastModifiedDateTime"] = offset_time(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seq))
        previous = coll.items.get(item_id)
        item = Item(item_id, body, seq, **extra)
        if previous is not None and previous.mime is not None and item.mime is None:
            item.mime = previous.mime
        coll.items[item_id] = item
        return item

    def remove(self, upn: str, collection: str, item_id: str) -> None:
        item = self.mailbox(upn).collections[collection].items[item_id]
        item.deleted, item.seq = True, self._bump()

    def message_body(self, mime: bytes) -> dict[str, Any]:
        parsed = message_from_bytes(mime)
        sender = getaddresses([str(parsed.get("From", ""))])
        return {
            "@odata.type": "#microsoft.graph.message",
            "subject": str(parsed.get("Subject", "")),
            "internetMessageId": str(parsed.get("Message-ID", "")),
            "isRead": False,
            "sender": {"emailAddress": {"name": sender[0][0], "address": sender[0][1]}} if sender else None,
        }

    # --- ids ---------------------------------------------------------------------------------------------

    @staticmethod
    def rest_id(collection: str, immutable_id: str) -> str:
        """The default (mutable) id: it depends on the folder, so it changes when an item moves."""
        digest = hashlib.sha256(f"{collection}/{immutable_id}".encode()).digest()
        return "AAMkAGI2" + base64.urlsafe_b64encode(digest[:27]).decode()

    def find(self, upn: str, collections: tuple[str, ...], any_id: str) -> Item | None:
        mailbox = self.mailboxes.get(upn.lower())
        if mailbox is None:
            return None
        for name in collections:
            for item in mailbox.collections[name].items.values():
                if not item.deleted and any_id in (item.immutable_id, self.rest_id(name, item.immutable_id)):
                    return item
        return None

    def render(self, collection: str, item: Item, immutable: bool, select: str | None) -> dict[str, Any]:
        item_id = item.immutable_id if immutable else self.rest_id(collection, item.immutable_id)
        odata_type = item.body.get("@odata.type", "#microsoft.graph.message")
        if item.deleted:
            return {"@odata.type": odata_type, "id": item_id, "@removed": {"reason": "deleted"}}
        body = dict(item.body)
        if select:  # $select: the selected properties (id is always returned)
            wanted = {s.strip() for s in select.split(",")}
            body = {k: v for k, v in body.items() if k in wanted or k.startswith("@odata.type")}
        return {**body, "@odata.etag": f'W/"{item.body["changeKey"]}"', "id": item_id}

    # --- delta rounds ------------------------------------------------------------------------------------

    def start_round(self, upn: str, collection: str, since: int, window: tuple[datetime, datetime] | None,
                    select: str | None) -> Round:  # fmt: skip
        """Ids to report: every live item (initial round) or every item changed after ``since``."""
        items = sorted(self.mailbox(upn).collections[collection].items.values(), key=lambda i: i.seq)
        if since == 0:
            chosen = [i for i in items if not i.deleted and _inside(i, window)]
        else:
            chosen = [i for i in items if i.seq > since]
        return Round(upn.lower(), collection, [i.immutable_id for i in chosen], self.last_seq, window, select)

    def page(self, rnd: Round, offset: int, size: int, immutable: bool) -> tuple[list[dict[str, Any]], int | None]:
        """One page of a round: the items' *current* state (a change during the round is replayed later)."""
        coll = self.mailbox(rnd.mailbox).collections[rnd.collection]
        chunk = rnd.ids[offset : offset + size]
        values = []
        for item_id in chunk:
            item = coll.items[item_id]
            if not item.deleted and rnd.window is not None and not _inside(item, rnd.window):
                # event-delta: events outside the range that changed are reported under @removed
                item = Item(item.immutable_id, item.body, item.seq, deleted=True)
            values.append(self.render(rnd.collection, item, immutable, rnd.select))
        end = offset + len(chunk)
        return values, (end if end < len(rnd.ids) else None)

    def new_token(self) -> str:
        return base64.urlsafe_b64encode(secrets.token_bytes(18)).decode().rstrip("=")

    def expire_tokens(self) -> None:
        """Forget every sync state: the next skip / delta token gets ``410 Gone`` (``syncStateNotFound``)."""
        self.skip_tokens.clear()
        self.delta_tokens.clear()


def _inside(item: Item, window: tuple[datetime, datetime] | None) -> bool:
    if window is None or item.span is None:
        return True
    start, end = item.span
    return start < window[1] and end > window[0]

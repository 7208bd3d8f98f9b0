"""Re-key the all-day occurrences that Exchange (EWS) calendars stored one day early.

Before this version the EWS connector (``sync_service.connectors.ews_calendar``) gave an occurrence of an
all-day series the ``RECURRENCE-ID`` = the UTC date of its original start. Exchange gives that start as the
UTC instant of the local midnight, so for a series kept in a time zone east of UTC (Europe/Berlin, Asia/Tokyo,
Europe/London in summer) the date was the day before; an ``.ics`` file, a CalDAV server or an invitation email
of the same series give the local date. Now the connector gives the local date too. An event's canonical item
is keyed by UID + recurrence id (``synced_items.dedupe_key`` = ``evt:UID|RID``, and ``recurrence_id``, which
the activities export shows); nothing else stores the key. Left as they were, the next EWS sync would cancel
every stored occurrence of such a series inside the sync window (its old key is no longer in the snapshot)
and log each one again under the new key.

Which items were stored one day early. Candidates: event items with a date-valued recurrence id
(``YYYY-MM-DD``: only all-day occurrences get one from EWS) that a calendar object of an ``ews://`` mailbox
carries (``item_sources`` → ``raw_items`` of kind ``calendar`` → ``mailboxes.source_url``). For an occurrence
that was not moved the original start is the start, so its stored start date (``synced_items.sent_at``: the
UTC midnight of the DTSTART date) is the recurrence date + 1 day if it was shifted, the recurrence date itself
if not. Any other difference is a moved occurrence and says nothing. A zone's side of UTC may change with the
season (Europe/London: +1 in summer, 0 in winter), so the decision is made per occurrence, but not from the
occurrence alone: in each series (its occurrences in recurrence order) an occurrence counts as shifted when
most of the evidence of itself and its two neighbours on each side says so; on a tie its own evidence decides,
and with no evidence it is left alone. That keeps a seasonal change (a step in the series) where it is and
overrules an occurrence moved by exactly one day (which looks like the wrong kind of evidence), as long as
its neighbours were not moved too.

What is done with a shifted item (in each series from the latest recurrence date back, so that a daily
series' keys move into the ones its later occurrences just left):
- nothing else has its new key, and only EWS objects carry it: it is renamed (``dedupe_key``,
  ``recurrence_id``); its activity stays the same activity, with its id, links and history;
- an item already has the new key (the same series also came from an ``.ics``, CalDAV or an invitation, so
  each of these occurrences has been two activities): the EWS objects now carry that item, and the day-early
  item, carried by nothing else, goes with its activity when no person worked on that activity (no manual or
  removed link, no manual lead or opportunity, no result, no process step, no document, no history entry, no
  resolved review, not made by a person). If only the day-early activity was worked on, it takes the other's
  place (keeping its id) and the other goes. If both were, both stay: the day-early item, carried by nothing,
  gets the right recurrence id and a key of its own (``…|RID#item id``), and nothing will cancel it;
- an item also carried by a non-EWS object keeps its key (that object says it is right); only the EWS objects
  move, onto the item of the new key when there is one.

The stored bytes of the EWS calendar objects hold the old keys until Exchange is read again, and must not be
processed meanwhile. So the calendar cursor of every ``ews://`` mailbox is set to list the window again on its
next sync (as when the day changes), with the digests of the objects concerned blanked: the connector delivers
them again, with the new keys (so does it any other object whose bytes change with the fix, e.g. one in
quarantine). An EWS calendar object still waiting to be processed is set done without its bytes (``sha256``
NULL) and delivered again the same way, with what Exchange holds now: its old bytes would create items under
the old keys and cancel the re-keyed ones.

Limits. An occurrence moved by one day whose neighbours were moved the same way, or a series with one or two
occurrences stored one of which was moved by one day, may be decided wrongly: the next sync then cancels that
one occurrence's activity and logs it again (what every such occurrence did before this revision). A daily
all-day series in a zone whose side of UTC changes (London) had two days under one key around the spring
change: one of them is logged again. A daily all-day series east of UTC that also came from a non-EWS source
shared items between neighbouring days; the evidence of those items is mixed, and when the rule leaves the
series alone its first day stays as a cancelled second activity. An item of a mailbox removed since has no
source left and is not touched (it no longer syncs). Running this again on data already re-keyed changes
nothing: its unmoved occurrences show start = recurrence date. The downgrade keeps the new keys (an older
version would shift them back and log the occurrences again).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import base64
import json
import logging
import zlib
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

import crm_store.models.base

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

_REACH = 2  # neighbours on each side whose evidence counts
_CURSOR = "ewscal1."  # sync_service.connectors.ews_calendar.CURSOR_PREFIX
_KEY_LENGTH = 1100  # synced_items.dedupe_key

_mailboxes = sa.table("mailboxes", sa.column("id", sa.Integer()), sa.column("source_url", sa.String()))
_raw = sa.table(
    "raw_items",
    sa.column("id", sa.Integer()),
    sa.column("mailbox_id", sa.Integer()),
    sa.column("folder", sa.String()),
    sa.column("external_id", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("state", sa.String()),
    sa.column("sha256", sa.String()),
)
_sources = sa.table(
    "item_sources",
    sa.column("id", sa.Integer()),
    sa.column("item_id", sa.Integer()),
    sa.column("raw_item_id", sa.Integer()),
)
_items = sa.table(
    "synced_items",
    sa.column("id", sa.Integer()),
    sa.column("kind", sa.String()),
    sa.column("dedupe_key", sa.String()),
    sa.column("recurrence_id", sa.String()),
    sa.column("sent_at", crm_store.models.base.UtcDateTime(timezone=True)),
    sa.column("skip_reason", sa.String()),
)
_activities = sa.table(
    "activities",
    sa.column("id", sa.Integer()),
    sa.column("item_id", sa.Integer()),
    sa.column("origin", sa.String()),
    sa.column("result", sa.String()),
    sa.column("process_step", sa.String()),
    sa.column("opportunity_manual", sa.Boolean()),
    sa.column("lead_manual", sa.Boolean()),
)
_folders = sa.table(
    "folder_states",
    sa.column("id", sa.Integer()),
    sa.column("mailbox_id", sa.Integer()),
    sa.column("folder", sa.String()),
    sa.column("cursor", sa.Text()),
)


def _by_activity(name: str, *columns: str) -> sa.TableClause:
    return sa.table(name, sa.column("activity_id", sa.Integer()), *(sa.column(c) for c in columns))


# What a person may have done to an activity, by table: (table, condition on it).
_WORK = (
    (_by_activity("activity_accounts", "manual"), lambda t: t.c.manual.is_(sa.true())),
    (_by_activity("activity_contacts", "manual"), lambda t: t.c.manual.is_(sa.true())),
    (_by_activity("activity_link_exclusions"), None),
    (_by_activity("documents"), None),
    (_by_activity("opportunity_history"), None),
    (_by_activity("lead_history"), None),
    (_by_activity("review_items", "resolved_at"), lambda t: t.c.resolved_at.is_not(None)),
)
# What an activity that nobody worked on may still have: automatic links and an open review.
_AUTOMATIC = ("activity_accounts", "activity_contacts", "review_items")


class Occurrence:
    """A candidate item. (Not a dataclass: Alembic loads this module without registering it in sys.modules.)"""

    def __init__(self, item_id: int, key: str, recurrence: date, start: date | None) -> None:
        self.id, self.key, self.recurrence, self.start = item_id, key, recurrence, start
        self.ews: set[int] = set()  # ids of the EWS calendar objects carrying it
        self.others: set[int] = set()  # ids of the other objects carrying it

    @property
    def series(self) -> str:
        return self.key.rpartition("|")[0]

    @property
    def evidence(self) -> int | None:
        """1: looks stored one day early; 0: looks right; None: moved (says nothing)."""
        if self.start is None:
            return None
        days = (self.start - self.recurrence).days
        return days if days in (0, 1) else None


def shifted(evidence: Sequence[int | None]) -> list[bool]:
    """Which occurrences of one series (in recurrence order, ``Occurrence.evidence`` each) were stored one day
    early: the majority of the evidence of each and its ``_REACH`` neighbours on each side; on a tie its own."""
    decided = []
    for index, own in enumerate(evidence):
        near = [e for e in evidence[max(0, index - _REACH) : index + _REACH + 1] if e is not None]
        early = sum(near)
        right = len(near) - early
        decided.append(early > right or (early == right and own == 1))
    return decided


def _ews_calendar_objects() -> sa.Select[tuple[int]]:
    """The ids of the calendar objects of ``ews://`` mailboxes."""
    return (
        sa.select(_raw.c.id)
        .join(_mailboxes, _mailboxes.c.id == _raw.c.mailbox_id)
        .where(_raw.c.kind == "calendar", sa.func.lower(_mailboxes.c.source_url).like("ews://%"))
    )


def _candidates(connection: Connection) -> dict[int, Occurrence]:
    """The event items with a date as recurrence id that an EWS calendar object carries, with their sources."""
    carried = sa.select(_sources.c.item_id).where(_sources.c.raw_item_id.in_(_ews_calendar_objects()))
    rows = connection.execute(
        sa.select(_items.c.id, _items.c.dedupe_key, _items.c.recurrence_id, _items.c.sent_at).where(
            _items.c.kind == "event",
            sa.func.length(_items.c.recurrence_id) == 10,
            _items.c.id.in_(carried),
        )
    )
    found: dict[int, Occurrence] = {}
    for item_id, key, rid, start in rows:
        try:
            recurrence = date.fromisoformat(rid)
        except ValueError:
            continue
        if key.endswith("|" + rid):
            found[item_id] = Occurrence(item_id, key, recurrence, start.date() if start is not None else None)
    ews = set(connection.scalars(_ews_calendar_objects())) if found else set()
    for chunk in _chunks(sorted(found)):
        query = sa.select(_sources.c.item_id, _sources.c.raw_item_id).where(_sources.c.item_id.in_(chunk))
        for item_id, raw_id in connection.execute(query):
            (found[item_id].ews if raw_id in ews else found[item_id].others).add(raw_id)
    return found


def _chunks(values: Sequence[int], size: int = 500) -> list[Sequence[int]]:
    return [values[first : first + size] for first in range(0, len(values), size)]


def _worked_on(connection: Connection, activity_id: int) -> bool:
    """Did a person do anything to this activity (see the module docstring)?"""
    row = connection.execute(
        sa.select(
            _activities.c.origin,
            _activities.c.result,
            _activities.c.process_step,
            _activities.c.opportunity_manual,
            _activities.c.lead_manual,
        ).where(_activities.c.id == activity_id)
    ).one()
    if row.origin != "sync" or row.result is not None or row.process_step is not None:
        return True
    if row.opportunity_manual or row.lead_manual:
        return True
    for table, condition in _WORK:
        query = sa.select(table.c.activity_id).where(table.c.activity_id == activity_id)
        if condition is not None:
            query = query.where(condition(table))
        if connection.execute(query.limit(1)).first() is not None:
            return True
    return False


def _activity_of(connection: Connection, item_id: int) -> int | None:
    return connection.scalar(sa.select(_activities.c.id).where(_activities.c.item_id == item_id))


def _delete_activity(connection: Connection, activity_id: int) -> None:
    for name in _AUTOMATIC:
        table = _by_activity(name)
        connection.execute(table.delete().where(table.c.activity_id == activity_id))
    connection.execute(_activities.delete().where(_activities.c.id == activity_id))


def _merge(connection: Connection, occurrence: Occurrence, target: int, new_key: str) -> str:
    """The day-early item's EWS sources go to the item that has the new key; what is left of it is resolved."""
    have = set(connection.scalars(sa.select(_sources.c.raw_item_id).where(_sources.c.item_id == target)))
    for raw_id in sorted(occurrence.ews):
        where = (_sources.c.item_id == occurrence.id, _sources.c.raw_item_id == raw_id)
        if raw_id in have:
            connection.execute(_sources.delete().where(*where))
        else:
            connection.execute(_sources.update().where(*where).values(item_id=target))
    if occurrence.others:
        return "moved"
    early, kept = _activity_of(connection, occurrence.id), _activity_of(connection, target)
    if early is not None and kept is not None:
        if _worked_on(connection, early):
            if _worked_on(connection, kept):
                log.warning(
                    "activities %s and %s are the same occurrence and were both worked on: both kept", kept, early
                )
                _set_aside(connection, occurrence, new_key)
                return "both kept"
            _delete_activity(connection, kept)
            kept = None
        else:
            _delete_activity(connection, early)
            early = None
    if early is not None:  # the other item has no activity (any more): this one takes its place
        connection.execute(_activities.update().where(_activities.c.id == early).values(item_id=target))
        connection.execute(_items.update().where(_items.c.id == target).values(skip_reason=None))
    connection.execute(_sources.delete().where(_sources.c.item_id == occurrence.id))
    connection.execute(_items.delete().where(_items.c.id == occurrence.id))
    return "merged"


def _set_aside(connection: Connection, occurrence: Occurrence, new_key: str) -> None:
    """A day-early item kept for its activity, carried by nothing: the right recurrence id (the export shows
    it), and a key no source gives, out of the way of the key its series' previous day has now."""
    key = f"{new_key}#{occurrence.id}"
    if len(key) <= _KEY_LENGTH:
        rid = new_key.rpartition("|")[2]
        connection.execute(
            _items.update().where(_items.c.id == occurrence.id).values(dedupe_key=key, recurrence_id=rid)
        )


def _rekey(connection: Connection, occurrence: Occurrence) -> str:
    new_rid = (occurrence.recurrence + timedelta(days=1)).isoformat()
    new_key = f"{occurrence.series}|{new_rid}"
    target = connection.scalar(sa.select(_items.c.id).where(_items.c.dedupe_key == new_key))
    if target is not None:
        return _merge(connection, occurrence, target, new_key)
    if occurrence.others:
        return "kept"  # another source says this key is right, and none has the new one
    connection.execute(
        _items.update().where(_items.c.id == occurrence.id).values(dedupe_key=new_key, recurrence_id=new_rid)
    )
    return "renamed"


def _decide(found: dict[int, Occurrence]) -> list[Occurrence]:
    """The shifted occurrences, each series' from the latest back."""
    series: dict[str, list[Occurrence]] = defaultdict(list)
    for occurrence in found.values():
        series[occurrence.series].append(occurrence)
    chosen: list[Occurrence] = []
    for members in series.values():
        members.sort(key=lambda o: (o.recurrence, o.id))
        flags = shifted([o.evidence for o in members])
        chosen += reversed([o for o, flag in zip(members, flags, strict=True) if flag])
    return chosen


def _list_again(connection: Connection, objects: dict[int, set[str]]) -> None:
    """Make the calendar cursor of every ``ews://`` mailbox list the window again on its next sync (as when the
    day changes), and deliver ``objects`` (mailbox id → series keys) again: their digests then match nothing."""
    rows = connection.execute(
        sa.select(_folders.c.id, _folders.c.mailbox_id, _folders.c.cursor)
        .join(_mailboxes, _mailboxes.c.id == _folders.c.mailbox_id)
        .where(_folders.c.folder == "calendar", sa.func.lower(_mailboxes.c.source_url).like("ews://%"))
    ).all()
    for folder_id, mailbox_id, cursor in rows:
        changed = _forget(cursor, objects.get(mailbox_id, set()))
        if changed is not None:
            connection.execute(_folders.update().where(_folders.c.id == folder_id).values(cursor=changed))


def _forget(cursor: str | None, keys: set[str]) -> str | None:
    """The calendar cursor with ``keys``' digests blanked and the listing marked incomplete; ``None`` for a
    cursor that is not one (none yet, or undecodable: the connector lists everything again by itself)."""
    if not cursor or not cursor.startswith(_CURSOR):
        return None
    try:
        payload = json.loads(zlib.decompress(base64.urlsafe_b64decode(cursor[len(_CURSOR) :])))
        digests = dict(payload["u"])
    except (ValueError, TypeError, KeyError, zlib.error):
        return None
    for key in keys:
        if key in digests:
            digests[key] = ""
    payload["u"], payload["c"] = digests, False
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return _CURSOR + base64.urlsafe_b64encode(zlib.compress(raw, 6)).decode("ascii")


def upgrade() -> None:
    connection = op.get_bind()
    found = _candidates(connection)
    outcomes: dict[str, int] = defaultdict(int)
    stale: set[int] = set()  # EWS calendar objects whose bytes hold old keys
    for occurrence in _decide(found):
        outcomes[_rekey(connection, occurrence)] += 1
        stale |= occurrence.ews
    waiting = set(
        connection.scalars(
            sa.select(_raw.c.id).where(_raw.c.id.in_(_ews_calendar_objects()), _raw.c.state == "pending")
        )
    )
    for chunk in _chunks(sorted(waiting)):
        connection.execute(_raw.update().where(_raw.c.id.in_(chunk)).values(state="done", sha256=None))
    objects: dict[int, set[str]] = defaultdict(set)
    for chunk in _chunks(sorted(stale | waiting)):
        for mailbox_id, external_id in connection.execute(
            sa.select(_raw.c.mailbox_id, _raw.c.external_id).where(_raw.c.id.in_(chunk))
        ):
            objects[mailbox_id].add(external_id)
    _list_again(connection, objects)
    if outcomes or waiting:
        log.info(
            "EWS all-day occurrences re-keyed: %s; EWS calendar objects to read again: %d (%d were waiting)",
            dict(sorted(outcomes.items())),
            len(stale | waiting),
            len(waiting),
        )


def downgrade() -> None:
    pass  # the keys stay right; see the module docstring

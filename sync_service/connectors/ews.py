"""``ews://`` — Exchange Server 2016 / 2019 / Subscription Edition mailboxes over EWS, with exchangelib.

Folders: ``inbox``, ``sent`` (mail), ``calendar``, ``contacts`` (URL option ``folders=`` picks some).

Mail and contacts — one SyncFolderItems request per page (the service class, not exchangelib's
``sync_items`` generator, which drains every page before it hands out the new sync state):

    cursor "ews1.<sync state>" ──SyncFolderItems(state, MaxChangesReturned=limit)──▶ page
        Create / Update → upsert (id = EWS ItemId, version = ChangeKey)    Delete → delete
        ReadFlagChange  → nothing (the content did not change)
        IncludesLastItemInRange=false → more=True; the page's cursor is the sync state returned *with it*,
        so the pipeline stores it with exactly this page's items.
    ErrorInvalidSyncStateData → a new listing from no sync state, first page ``full_resync=True``; items keep
        their ItemIds and messages their Message-ID, so nothing doubles.

``fetch`` gets mail as MIME (GetItem with ``MimeContent``) and contacts as vCard (``ews_contacts``), in
batches. Calendar: see ``ews_calendar`` — SyncFolderItems only as the change probe, CalendarView + GetItem
over the sync window for the occurrences, one raw item per series.

Throttling and errors: ``ews_account.translate_errors`` (exchangelib runs fail-fast; ``ErrorServerBusy``
becomes ``TransientSourceError(retry_after=BackOffMilliseconds/1000)``). Every request has the URL's timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from exchangelib import UTC as EWS_UTC
from exchangelib import Contact, EWSDateTime
from exchangelib.errors import ErrorCalendarViewRangeTooBig, ErrorExceededFindCountLimit, ErrorInvalidSyncStateData
from exchangelib.items import ID_ONLY
from exchangelib.properties import ItemId
from exchangelib.services import SyncFolderItems

from sync_service.connectors import ews_calendar, ews_contacts
from sync_service.connectors.base import ChangePage, ItemKind, ItemRef, RawItem
from sync_service.connectors.ews_account import EwsSettings, open_account, parse_url, translate_errors
from sync_service.errors import ConfigError, PermanentSourceError

log = logging.getLogger(__name__)

CURSOR_PREFIX = "ews1."
MAX_CHANGES = 512  # the most SyncFolderItems returns per request
FETCH_BATCH = 50  # items per GetItem request (EWS limits batch work to about a minute per request)
VIEW_LIMIT = 1000  # MaxEntriesReturned per CalendarView request (the default EWSFindCountLimit)
_ACCOUNT_FOLDERS = {"inbox": "inbox", "sent": "sent", "calendar": "calendar", "contacts": "contacts"}


class EwsConnector:
    """One Exchange mailbox. The exchangelib account is opened on first use and closed in ``close``."""

    needs_secret = True

    def __init__(self, url: str, secret: str | None = None) -> None:
        self.settings: EwsSettings = parse_url(url)
        if not secret:
            raise ConfigError("ews: this source needs a secret (password, OAuth client secret or access token)")
        self._secret = secret
        self._account: Any = None
        self._folders: dict[str, Any] = {}
        self._series: dict[str, bytes] = {}  # calendar series key → iCalendar bytes of the last listing
        self._series_day: str | None = None  # the day its sync window was anchored on

    # --- the Connector interface ------------------------------------------------------------------------

    def folders(self) -> Sequence[str]:
        return list(self.settings.folders)

    def list_changes(self, folder: str, cursor: str | None, limit: int = 500) -> ChangePage:
        with translate_errors():
            if folder == "calendar":
                return self._calendar_changes(cursor, limit)
            return self._item_changes(folder, cursor, limit)

    def fetch(self, folder: str, refs: Sequence[ItemRef]) -> Iterator[RawItem]:
        if not refs:
            return
        with translate_errors():
            if folder == "calendar":
                yield from self._calendar_items(refs)
            elif folder == "contacts":
                for ref, contact in self._get_items(folder, refs, ews_contacts.FIELDS):
                    if isinstance(contact, Contact):
                        yield RawItem(ref, ews_contacts.to_vcard(contact))
            else:
                for ref, item in self._get_items(folder, refs, ("mime_content",)):
                    if item.mime_content:
                        yield RawItem(ref, bytes(item.mime_content))
                    else:
                        log.warning("EWS item %s has no MIME content; skipped", ref.external_id[:40])

    def close(self) -> None:
        if self._account is not None:
            self._account.protocol.close()
        self._account, self._folders, self._series, self._series_day = None, {}, {}, None

    # --- exchangelib objects --------------------------------------------------------------------------------

    def _acc(self) -> Any:
        if self._account is None:
            self._account = open_account(self.settings, self._secret)
        return self._account

    def _folder(self, name: str) -> Any:
        if name not in self.settings.folders:
            raise PermanentSourceError(f"no folder {name!r} in this source (it has {', '.join(self.settings.folders)})")
        if name not in self._folders:
            self._folders[name] = getattr(self._acc(), _ACCOUNT_FOLDERS[name])  # GetFolder (distinguished id)
        return self._folders[name]

    def _sync_page(self, folder: Any, state: str | None, limit: int) -> tuple[list[tuple[str, Any]], str, bool]:
        """One SyncFolderItems request: (changes, new sync state, IncludesLastItemInRange)."""
        service = SyncFolderItems(account=self._acc())
        changes = [
            c
            for c in service.call(
                folder=folder,
                shape=ID_ONLY,
                additional_fields=set(),
                sync_state=state,
                ignore=None,
                max_changes_returned=max(1, min(limit, MAX_CHANGES)),
                sync_scope="NormalItems",
            )
            if not isinstance(c, Exception)
        ]
        return changes, str(service.sync_state or ""), bool(service.includes_last_item_in_range)

    def _get_items(self, folder: str, refs: Sequence[ItemRef], fields: Sequence[str]) -> Iterator[tuple[ItemRef, Any]]:
        """GetItem in batches; items gone meanwhile (ErrorItemNotFound…) are left out."""
        by_id = {r.external_id: r for r in refs}
        ids = [ItemId(id=r.external_id) for r in refs]  # no change key: always the current version
        for item in self._acc().fetch(
            ids=ids, folder=self._folder(folder), only_fields=list(fields), chunk_size=FETCH_BATCH
        ):
            if isinstance(item, Exception):
                log.info("EWS item not fetched (%s)", item)
                continue
            ref = by_id.get(item.id)
            if ref is not None:
                yield ref, item

    # --- mail and contacts --------------------------------------------------------------------------------

    def _item_changes(self, name: str, cursor: str | None, limit: int) -> ChangePage:
        folder = self._folder(name)
        state: str | None = None
        resync = False
        if cursor:
            state = cursor[len(CURSOR_PREFIX) :] if cursor.startswith(CURSOR_PREFIX) else None
            resync = state is None  # a cursor from elsewhere: start over, replacing what it covered
        try:
            changes, new_state, last = self._sync_page(folder, state, limit)
        except ErrorInvalidSyncStateData:
            log.warning(
                "Exchange rejected the sync state of %s/%s; listing the folder again", self.settings.mailbox, name
            )
            state, resync = None, True
            changes, new_state, last = self._sync_page(folder, None, limit)
        kind: ItemKind = "contacts" if name == "contacts" else "message"
        upserts: dict[str, ItemRef] = {}
        deletes: dict[str, None] = {}
        for change, item in changes:
            if change in ("create", "update"):
                if kind == "contacts" and not isinstance(item, Contact):
                    continue  # distribution lists and other non-person items
                upserts[item.id] = ItemRef(item.id, kind, item.changekey or "")
                deletes.pop(item.id, None)
            elif change == "delete":
                upserts.pop(item.id, None)
                deletes[item.id] = None
            # "read_flag_change": only the read flag moved — the MIME stored earlier is still right
        more = not last and (new_state != state or bool(changes))  # the same state back means nothing more
        return ChangePage(tuple(upserts.values()), tuple(deletes), CURSOR_PREFIX + new_state, more, resync)

    # --- calendar -----------------------------------------------------------------------------------------

    def _probe(self, folder: Any, state: str | None) -> tuple[bool, str]:
        """Drain SyncFolderItems (ids only) from ``state``: (anything changed, the new sync state)."""
        changed = False
        for _ in range(10_000):
            try:
                changes, new_state, last = self._sync_page(folder, state, MAX_CHANGES)
            except ErrorInvalidSyncStateData:  # our own digests stay valid: just start the probe over
                state, changed = None, True
                continue
            changed = changed or bool(changes)
            if last or new_state == state:
                return changed, new_state
            state = new_state
        return True, state or ""

    def _calendar_changes(self, cursor: str | None, limit: int) -> ChangePage:
        folder = self._folder("calendar")
        previous = ews_calendar.CalendarCursor.decode(cursor)
        changed, sync_state = self._probe(folder, previous.sync_state)
        day = datetime.now(UTC).date().isoformat()
        if previous.complete and not changed and previous.day == day:
            unchanged = ews_calendar.CalendarCursor(sync_state, day, previous.digests, True)
            return ChangePage((), (), unchanged.encode())
        if changed or self._series_day != day:  # else the snapshot of the previous page is still the truth
            self._series, self._series_day = self._calendar_snapshot(folder, day), day
        digests = {key: ews_calendar.digest(data) for key, data in self._series.items()}
        deletes = tuple(sorted(k for k in previous.digests if k not in digests))
        pending = sorted(k for k in digests if previous.digests.get(k) != digests[k])
        page = pending[: max(1, limit)]
        covered = {k: v for k, v in previous.digests.items() if k in digests}
        covered.update((k, digests[k]) for k in page)
        more = len(pending) > len(page)
        next_cursor = ews_calendar.CalendarCursor(sync_state, day, covered, not more).encode()
        return ChangePage(tuple(ItemRef(k, "calendar", digests[k]) for k in page), deletes, next_cursor, more)

    def _calendar_snapshot(self, folder: Any, day: str) -> dict[str, bytes]:
        """Every series with occurrences in the sync window anchored on ``day``, as iCalendar bytes."""
        anchor = datetime.fromisoformat(day).replace(tzinfo=UTC)
        start = anchor - timedelta(days=self.settings.past_days)
        end = anchor + timedelta(days=self.settings.future_days + 1)
        ids = self._view_ids(folder, start, end)
        items = (
            i
            for i in self._acc().fetch(
                ids=ids, folder=folder, only_fields=list(ews_calendar.FIELDS), chunk_size=FETCH_BATCH
            )
            if not isinstance(i, Exception)
        )
        return ews_calendar.group_series(items, self.settings.max_occurrences)

    def _view_ids(self, folder: Any, start: datetime, end: datetime) -> list[ItemId]:
        """Ids of the CalendarView over [start, end). A view that comes back full (``MaxEntriesReturned`` items) or
        is refused as too big (``ErrorCalendarViewRangeTooBig``, ``ErrorExceededFindCountLimit``) is split in
        halves until each part fits."""
        found: dict[str, ItemId] = {}
        spans = [(start, end)]
        while spans:
            low, high = spans.pop()
            divisible = high - low > timedelta(hours=1)
            view = folder.view(start=_ews_time(low), end=_ews_time(high), max_items=VIEW_LIMIT).only("start")
            try:
                items = [i for i in view if not isinstance(i, Exception)]
            except (ErrorCalendarViewRangeTooBig, ErrorExceededFindCountLimit):
                if not divisible:
                    raise
                items = None
            if divisible and (items is None or len(items) >= VIEW_LIMIT):
                middle = low + (high - low) / 2
                spans += [(low, middle), (middle, high)]
                continue
            found.update((i.id, ItemId(id=i.id, changekey=i.changekey)) for i in items or ())
        return list(found.values())

    def _calendar_items(self, refs: Sequence[ItemRef]) -> Iterator[RawItem]:
        if any(r.external_id not in self._series for r in refs):  # fetch without a listing just before
            day = datetime.now(UTC).date().isoformat()
            self._series, self._series_day = self._calendar_snapshot(self._folder("calendar"), day), day
        for ref in refs:
            data = self._series.get(ref.external_id)
            if data is not None:
                yield RawItem(ref, data)


def _ews_time(value: datetime) -> Any:
    return EWSDateTime.from_datetime(value.astimezone(UTC)).astimezone(EWS_UTC)

"""``graph://`` — Exchange Online / Microsoft 365 mailboxes through Microsoft Graph (URL form: :mod:`graph_config`).

Folders and how each is read (delta queries, https://learn.microsoft.com/graph/delta-query-overview):

- mail folders (``inbox``, ``sentitems``, …): ``GET /users/{u}/mailFolders/{folder}/messages/delta`` gives ids
  (+ ``@removed`` → deletes); ``fetch`` downloads each message's MIME with ``GET /users/{u}/messages/{id}/$value``,
  at most ``MAX_CONCURRENCY`` (4, Exchange Online's per-app-and-mailbox limit) at a time.
- ``calendar``: ``GET /users/{u}/calendarView/delta?startDateTime=…&endDateTime=…`` over the sync window; each
  instance (single, occurrence, exception) becomes one iCalendar raw item (:mod:`graph_events`).
- ``contacts``: ``GET /users/{u}/contacts/delta``; each contact becomes one vCard raw item (:mod:`graph_contacts`).
  Calendar and contact pages carry the full objects, so ``fetch`` serves the bytes converted while listing.

Cursor (opaque JSON): ``{"link": URL}`` — the ``@odata.nextLink`` while a round is paging, so a stored page
cursor resumes right after that page, and the ``@odata.deltaLink`` once the round is complete. Calendar
cursors also hold the window they were opened with. Per folder::

    no cursor ──initial delta──▶ nextLink … ──last page──▶ deltaLink ──next sync──▶ nextLink … / deltaLink
        ▲                                                      │ 410 Gone / syncStateNotFound / resyncRequired
        └─────────── fresh initial delta, page marked full_resync ◀┘

``full_resync`` makes the pipeline mark the folder's items deleted and re-store what the new round lists;
messages and events are deduplicated by Message-ID and UID + RECURRENCE-ID, so nothing doubles.
The calendar window moves with time: when a completed calendar round's window starts on another day than
today's, the old deltaLink is drained first (its deletions are not lost) and a new round opens on the new
window (unchanged events give the same bytes, which the pipeline recognises). Events that leave the window
are reported by Graph as ``@removed`` and become deletes, as the event-delta documentation describes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from sync_service.connectors.base import ChangePage, ItemKind, ItemRef, RawItem
from sync_service.connectors.graph_auth import MsalHttp, TokenSource, token_source
from sync_service.connectors.graph_client import GraphClient, NotFound, SyncStateLost
from sync_service.connectors.graph_config import CALENDAR, CONTACTS, GraphConfig, parse_graph_url
from sync_service.connectors.graph_contacts import contact_to_vcard
from sync_service.connectors.graph_events import event_to_ical
from sync_service.errors import ConfigError, PermanentSourceError, TransientSourceError

MAX_CONCURRENCY = 4
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class _Cursor:
    link: str | None  # None: open a new round (on ``window`` for the calendar)
    window: tuple[str, str] | None = None

    def encode(self) -> str:
        data: dict[str, Any] = {"link": self.link}
        if self.window:
            data["window"] = list(self.window)
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str | None) -> _Cursor | None:
        if not raw:
            return None
        try:
            data = json.loads(raw)
            window = data.get("window")
            return cls(data.get("link") or None, (str(window[0]), str(window[1])) if window else None)
        except (ValueError, TypeError, AttributeError, IndexError, KeyError):
            return None  # not ours (e.g. written by another connector version): treated like a lost sync state


def _kind(folder: str) -> ItemKind:
    return "calendar" if folder == CALENDAR else "contacts" if folder == CONTACTS else "message"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _broken(kind: ItemKind, item_id: str, reason: str) -> bytes:
    """Bytes the parsers reject with a readable reason, so a malformed object is quarantined, not dropped."""
    safe = "".join(ch for ch in f"{item_id} ({reason})" if ch >= " ")[:300]
    if kind == "calendar":
        lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "BEGIN:VEVENT", f"UID:{safe}", "END:VEVENT", "END:VCALENDAR"]
    else:
        lines = ["BEGIN:VCARD", "VERSION:3.0", f"UID:{safe}", "END:VCARD"]
    return ("\r\n".join(lines) + "\r\n").encode()


class GraphConnector:
    """A Microsoft 365 mailbox; network work starts lazily and ends in :meth:`close`."""

    needs_secret = True

    def __init__(self, url: str, secret: str | None = None, *, now: datetime | None = None) -> None:
        self.config: GraphConfig = parse_graph_url(url)
        if not secret:
            raise ConfigError("graph source: the mailbox secret is missing (--secret-env VAR or a prompt)")
        self._secret = secret
        self._now = now
        self._http: httpx.Client | None = None
        self._tokens: TokenSource | None = None
        self._client: GraphClient | None = None
        self._prepared: dict[str, dict[str, bytes]] = {}
        user = quote(self.config.user, safe="@.")
        self._user_path = f"users/{user}"

    # --- plumbing -----------------------------------------------------------------------------------------

    def _graph(self) -> GraphClient:
        if self._client is None:
            limits = httpx.Limits(max_connections=MAX_CONCURRENCY + 1, max_keepalive_connections=MAX_CONCURRENCY)
            self._http = httpx.Client(timeout=self.config.timeout, limits=limits, follow_redirects=False,
                                      headers={"User-Agent": "crm-sync (Microsoft Graph connector)"})  # fmt: skip
            self._tokens = token_source(self.config, self._secret, MsalHttp(self._http))
            self._client = GraphClient(self.config.base, self.config.origin, self._http, self._tokens)
        return self._client

    def _window(self) -> tuple[str, str]:
        today = (self._now or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
        start = today - timedelta(days=self.config.past_days)
        return _stamp(start), _stamp(today + timedelta(days=self.config.future_days + 1))

    def _initial_url(self, folder: str, window: tuple[str, str] | None) -> str:
        graph = self._graph()
        if folder == CALENDAR:
            assert window is not None
            url = graph.url(f"{self._user_path}/calendarView/delta")
            return str(httpx.URL(url, params={"startDateTime": window[0], "endDateTime": window[1]}))
        if folder == CONTACTS:
            return graph.url(f"{self._user_path}/contacts/delta")
        url = graph.url(f"{self._user_path}/mailFolders/{quote(folder, safe='')}/messages/delta")
        return str(httpx.URL(url, params={"$select": "changeKey"}))

    # --- the connector interface --------------------------------------------------------------------------

    def folders(self) -> Sequence[str]:
        return list(self.config.folders)

    def list_changes(self, folder: str, cursor: str | None, limit: int = 500) -> ChangePage:
        graph = self._graph()
        calendar = folder == CALENDAR
        state = _Cursor.decode(cursor)
        if state is not None and state.link and not graph.owns(state.link):
            state = None  # written for another Graph root (the URL's base changed): start over
        resync = cursor is not None and state is None  # an unreadable cursor: start over, as after a 410
        if state is None:
            state = _Cursor(None, self._window() if calendar else None)
        window = (state.window or self._window()) if calendar else None
        page_size = max(1, min(limit, MAX_PAGE_SIZE))
        url = graph.check_link(state.link) if state.link else self._initial_url(folder, window)
        try:
            body = self._get_page(graph, folder, url, page_size)
        except SyncStateLost:
            resync, window = True, self._window() if calendar else None
            try:
                body = self._get_page(graph, folder, self._initial_url(folder, window), page_size)
            except SyncStateLost as error:
                raise TransientSourceError(f"graph: a new delta round was refused at once: {error}") from None
        upserts, deletes = self._split(folder, body.get("value"))
        next_link, delta_link = body.get("@odata.nextLink"), body.get("@odata.deltaLink")
        if isinstance(next_link, str) and next_link:
            graph.check_link(next_link)
            return ChangePage(upserts, deletes, _Cursor(next_link, window).encode(), more=True, full_resync=resync)
        if not isinstance(delta_link, str) or not delta_link:
            raise TransientSourceError(f"graph: a {folder} delta page without @odata.nextLink or @odata.deltaLink")
        graph.check_link(delta_link)
        if calendar and window is not None and window[0] != self._window()[0]:
            # The window moved: this round's changes are in, the next call opens a round on today's window.
            fresh = _Cursor(None, self._window()).encode()
            return ChangePage(upserts, deletes, fresh, more=True, full_resync=resync)
        return ChangePage(upserts, deletes, _Cursor(delta_link, window).encode(), more=False, full_resync=resync)

    def _get_page(self, graph: GraphClient, folder: str, url: str, page_size: int) -> dict[str, Any]:
        try:
            return graph.get_json(url, page_size=page_size)
        except NotFound as error:
            raise PermanentSourceError(
                f"graph: mailbox {self.config.user} or its folder {folder!r} was not found ({error})"
            ) from None

    def _split(self, folder: str, values: Any) -> tuple[tuple[ItemRef, ...], tuple[str, ...]]:
        """Upserts and deletes of one page; an id listed twice counts as its last state (Graph may replay)."""
        latest: dict[str, dict[str, Any] | None] = {}
        for entry in values if isinstance(values, list) else []:
            item_id = entry.get("id") if isinstance(entry, dict) else None
            if isinstance(item_id, str) and item_id:
                latest.pop(item_id, None)
                latest[item_id] = None if "@removed" in entry else entry
        kind = _kind(folder)
        upserts: list[ItemRef] = []
        prepared: dict[str, bytes] = {}
        for item_id, entry in latest.items():
            if entry is None or (kind == "calendar" and entry.get("type") == "seriesMaster"):
                continue  # calendarView lists instances; a series master would double its occurrences
            ref = ItemRef(item_id, kind, str(entry.get("changeKey") or entry.get("@odata.etag") or ""))
            if kind != "message":
                prepared[item_id] = self._convert(kind, entry)
            upserts.append(ref)
        self._prepared[folder] = prepared
        return tuple(upserts), tuple(i for i, e in latest.items() if e is None)

    @staticmethod
    def _convert(kind: ItemKind, entry: dict[str, Any]) -> bytes:
        try:
            return event_to_ical(entry) if kind == "calendar" else contact_to_vcard(entry)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            return _broken(kind, str(entry.get("id")), str(error) or type(error).__name__)

    def fetch(self, folder: str, refs: Sequence[ItemRef]) -> Iterator[RawItem]:
        graph = self._graph()
        if _kind(folder) != "message":
            yield from self._fetch_prepared(graph, folder, refs)
            return
        pool = ThreadPoolExecutor(max_workers=MAX_CONCURRENCY, thread_name_prefix="graph-fetch")
        try:
            futures = [pool.submit(self._mime, graph, ref) for ref in refs]
            for future in futures:
                item = future.result()
                if item is not None:
                    yield item
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _mime(self, graph: GraphClient, ref: ItemRef) -> RawItem | None:
        url = graph.url(f"{self._user_path}/messages/{quote(ref.external_id, safe='=')}/$value")
        try:
            return RawItem(ref, graph.get_bytes(url))
        except NotFound:
            return None  # deleted since it was listed

    def _fetch_prepared(self, graph: GraphClient, folder: str, refs: Sequence[ItemRef]) -> Iterator[RawItem]:
        prepared = self._prepared.get(folder, {})
        kind = _kind(folder)
        collection = "events" if kind == "calendar" else "contacts"
        for ref in refs:
            data = prepared.get(ref.external_id)
            if data is None:  # not from the last listed page: read the object itself
                url = graph.url(f"{self._user_path}/{collection}/{quote(ref.external_id, safe='=')}")
                try:
                    entry = graph.get_json(url)
                except NotFound:
                    continue
                data = self._convert(kind, entry)
            yield RawItem(ref, data)

    def rotated_secret(self) -> str | None:
        """The new mailbox secret after a delegated refresh-token rotation (see :mod:`graph_auth`)."""
        return self._tokens.rotated_secret() if self._tokens is not None else None

    def close(self) -> None:
        self._prepared.clear()
        if self._http is not None:
            self._http.close()
        self._http = self._client = None  # the token source stays: the runner asks for a rotated secret

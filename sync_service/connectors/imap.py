"""``imap://`` / ``imaps://`` — an IMAP mailbox, read-only (URL options: ``imap_config.py``).

Folders: those named in the URL, else INBOX and the folder flagged ``\\Sent`` (RFC 6154 special use).
Items: kind ``message``, external id ``<UIDVALIDITY>:<UID>`` (the pair IMAP guarantees to name one message
for ever), version = the message's MODSEQ ("" without CONDSTORE), bytes = ``BODY.PEEK[]`` (never marks seen).

Folder sync state machine — the state is the cursor (``imap_cursor.py``: UIDVALIDITY, HIGH, HIGHESTMODSEQ,
KNOWN UIDs), stored by the pipeline with the page it covers::

    (no cursor) ──▶ INITIAL: EXAMINE; UID SEARCH ALL; pages of ≤ limit UIDs in ascending order.
                     page cursor: HIGH = last UID of the page, KNOWN += page UIDs; more=True
                     last page:   HIGH = max(last UID, UIDNEXT − 1); more=False ──▶ INCREMENTAL
    INCREMENTAL ──▶ EXAMINE folder [QRESYNC (UIDVALIDITY HIGHESTMODSEQ)] →
                     UIDVALIDITY differs ──▶ RESYNC
                     UIDNEXT − 1 ≤ HIGH and EXISTS = |KNOWN| ──▶ nothing changed (no further command)
                     else deletes = VANISHED ∩ KNOWN (QRESYNC; checked against EXISTS) or KNOWN − UID SEARCH ALL;
                          new = UIDs > HIGH, paged as in INITIAL; all deletes go in the first page
    RESYNC ──▶ first page has full_resync=True (the pipeline marks the folder's items deleted), then INITIAL
               with the new UIDVALIDITY; the re-stored messages dedupe by Message-ID, so nothing doubles.

Flag changes are not changes for the CRM (bytes are immutable under one UIDVALIDITY), so they cost nothing.
A page's later pages are served from memory when ``list_changes`` is called with the cursor just returned
(no second EXAMINE/SEARCH); anything that changed meanwhile is found by the next sync.

Connection: DISCONNECTED ──connect+login+ENABLE QRESYNC──▶ READY ──EXAMINE──▶ SELECTED. A lost connection
(network, a stall past ``timeout``, server restart) reconnects with backoff (0.5, 1, 2, 4 s) and repeats the
operation; a fetch resumes with the UIDs not yet delivered. Still failing → ``TransientSourceError``. A server
that does not answer in time (no greeting or login answer within ``timeout``, or any answer trickled past its
``deadline``: ``imap_client``) → ``Unresponsive`` at once, without reconnecting: a new connection would fare no
better, and this process leaves the mailbox alone for a minute (``imap_unanswered``) so that the workers'
retries do not multiply the wait (audit 17a F12). Refused credentials or a
missing folder → ``PermanentSourceError``. No message ever carries the secret. ``auth=xoauth2`` takes an access
token or a refresh grant (``imap_oauth.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sync_service.connectors.base import ChangePage, ItemRef, RawItem
from sync_service.connectors.imap_config import ImapConfig
from sync_service.connectors.imap_cursor import FolderCursor, decode, members
from sync_service.connectors.imap_errors import ConnectionLost
from sync_service.connectors.imap_session import FolderStatus, ImapSession
from sync_service.errors import PermanentSourceError, TransientSourceError

log = logging.getLogger(__name__)
T = TypeVar("T")
BACKOFF = (0.5, 1.0, 2.0, 4.0)  # seconds before each reconnection attempt
SENT_NAMES = ("Sent", "Sent Items", "Sent Messages", "INBOX/Sent", "INBOX.Sent")


@dataclass(frozen=True, slots=True)
class _Plan:
    """The rest of a listing, served to the next ``list_changes`` call that brings back ``cursor``."""

    cursor: str
    state: FolderCursor
    pending: tuple[int, ...]
    uidnext: int


class ImapConnector:
    needs_secret = True

    def __init__(self, url: str, secret: str | None = None) -> None:
        self.config = ImapConfig.from_url(url)
        self.session = ImapSession(self.config, secret)
        self.backoff: Sequence[float] = BACKOFF
        self._folders: list[str] | None = None
        self._plans: dict[str, _Plan] = {}
        self._validity: dict[str, int] = {}  # folder → UIDVALIDITY seen by the last EXAMINE

    @property
    def idle(self) -> bool:
        """Whether the mailbox asked for an IDLE watch (``?idle=1``); see ``imap_idle.py``."""
        return self.config.idle

    # -- Connector -------------------------------------------------------------------------------------
    def folders(self) -> Sequence[str]:
        if self._folders is None:
            self._folders = self._retrying(self._resolve_folders)
        return list(self._folders)

    def list_changes(self, folder: str, cursor: str | None, limit: int = 500) -> ChangePage:
        plan = self._plans.pop(folder, None)
        if plan is not None and cursor == plan.cursor:
            return self._page(folder, plan.state, list(plan.pending), plan.uidnext, (), limit, resync=False)
        return self._retrying(lambda session: self._list(session, folder, decode(cursor), max(1, limit)))

    def fetch(self, folder: str, refs: Sequence[ItemRef]) -> Iterator[RawItem]:
        by_uid: dict[int, ItemRef] = {}
        for ref in refs:
            validity, _, number = ref.external_id.partition(":")
            if validity.isdigit() and number.isdigit():
                by_uid[int(number)] = ref
        delivered: set[int] = set()
        for attempt in range(len(self.backoff) + 1):
            wanted = sorted(u for u in by_uid if u not in delivered)
            try:
                if wanted:
                    current = self._select(folder)  # a UID of another UIDVALIDITY names another message
                    wanted = [u for u in wanted if by_uid[u].external_id.startswith(f"{current}:")]
                for uid, modseq, data in self.session.fetch(wanted) if wanted else ():
                    asked = by_uid.get(uid)
                    if asked is not None and uid not in delivered:
                        delivered.add(uid)
                        yield RawItem(ItemRef(asked.external_id, "message", str(modseq) if modseq else ""), data)
                return
            except ConnectionLost as error:
                self._wait_to_reconnect(error, attempt)

    def rotated_secret(self) -> str | None:
        """A rotated OAuth2 refresh token (``auth=xoauth2`` with a refresh grant): the runner stores it."""
        return self.session.rotated_secret()

    def close(self) -> None:
        self._plans.clear()
        self.session.close()

    # -- listing ---------------------------------------------------------------------------------------
    def _list(self, session: ImapSession, folder: str, state: FolderCursor | None, limit: int) -> ChangePage:
        qresync = (state.uidvalidity, state.modseq) if state is not None else None
        status = session.examine(folder, qresync)
        self._validity[folder] = status.uidvalidity
        if state is None or state.uidvalidity != status.uidvalidity:
            if state is not None:
                log.warning(
                    "UIDVALIDITY of %r changed (%s → %s) for %s: full resync",
                    folder, state.uidvalidity, status.uidvalidity, self.config.where,
                )
            fresh = FolderCursor(status.uidvalidity, 0, status.highestmodseq, ())
            return self._page(folder, fresh, session.search_uids(), status.uidnext, (), limit, resync=state is not None)
        known = state.known
        if 0 < status.uidnext <= state.high + 1 and status.exists == len(known):
            return ChangePage((), (), FolderCursor(state.uidvalidity, state.high, status.highestmodseq, known).encode())
        gone, new = self._changes(session, state, status)
        kept = tuple(u for u in known if u not in gone)
        base = FolderCursor(state.uidvalidity, state.high, status.highestmodseq, kept)
        deletes = tuple(f"{state.uidvalidity}:{u}" for u in sorted(gone))
        return self._page(folder, base, new, status.uidnext, deletes, limit, resync=False)

    @staticmethod
    def _changes(session: ImapSession, state: FolderCursor, status: FolderStatus) -> tuple[set[int], list[int]]:
        """(UIDs of KNOWN gone from the folder, UIDs above HIGH): from VANISHED when it adds up, else by search."""
        if status.vanished is not None:
            gone = members(state.known, status.vanished)
            new = session.search_uids(above=state.high)
            if len(state.known) - len(gone) + len(new) == status.exists:
                return gone, new
        current = session.search_uids()
        present = set(current)
        return {u for u in state.known if u not in present}, [u for u in current if u > state.high]

    def _page(
        self,
        folder: str,
        base: FolderCursor,
        new: list[int],
        uidnext: int,
        deletes: tuple[str, ...],
        limit: int,
        resync: bool,
    ) -> ChangePage:
        page, rest = new[:limit], new[limit:]
        high = page[-1] if rest else max(base.high, uidnext - 1, page[-1] if page else 0)
        state = FolderCursor(base.uidvalidity, high, base.modseq, base.known + tuple(page))
        cursor = state.encode()
        if rest:
            self._plans[folder] = _Plan(cursor, state, tuple(rest), uidnext)
        upserts = tuple(ItemRef(f"{base.uidvalidity}:{u}", "message") for u in page)
        return ChangePage(upserts, deletes, cursor, more=bool(rest), full_resync=resync)

    # -- connection ------------------------------------------------------------------------------------
    def _resolve_folders(self, session: ImapSession) -> list[str]:
        listed = session.list_folders()
        names = {name for name, _ in listed}
        if self.config.folders is None:
            sent = [n for n, flags in listed if "\\Sent" in flags] or [n for n in SENT_NAMES if n in names]
            return ["INBOX", *sent[:1]]
        chosen: list[str] = []
        for wanted in self.config.folders:
            if wanted.startswith("\\"):
                match = [n for n, flags in listed if wanted.lower() in (f.lower() for f in flags)]
            else:
                match = [n for n in names if n == wanted or (wanted.upper() == "INBOX" and n.upper() == "INBOX")]
            if not match:
                raise PermanentSourceError(f"no IMAP folder {wanted!r} for {self.config.where}")
            if match[0] not in chosen:
                chosen.append(match[0])
        return chosen

    def _select(self, folder: str) -> int:
        if self.session.selected != folder or folder not in self._validity:
            self._validity[folder] = self.session.examine(folder).uidvalidity
        return self._validity[folder]

    def _retrying(self, operation: Callable[[ImapSession], T]) -> T:
        for attempt in range(len(self.backoff) + 1):
            try:
                return operation(self.session)
            except ConnectionLost as error:
                self._wait_to_reconnect(error, attempt)
        raise AssertionError("unreachable")

    def _wait_to_reconnect(self, error: ConnectionLost, attempt: int) -> None:
        self.session.close()
        self._plans.clear()
        if attempt >= len(self.backoff):
            raise TransientSourceError(f"{error} (gave up after {attempt + 1} attempts)") from None
        log.warning("%s; reconnecting in %.1f s", error, self.backoff[attempt])
        time.sleep(self.backoff[attempt])

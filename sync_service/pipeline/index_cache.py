"""The candidate index a process keeps between processing runs, while the CRM data it was read from is unchanged.

Building the index reads every user, contact, lead, account domain and open opportunity: 12 ms for a CRM of
2,600 contacts, about a second for 100,000. Without a cache every run pays that, however few items it
processes, so frequent small syncs in a large CRM spent most of their time there. With it, a run starts with
one query (``crm_store.index_changes``) and private copies of the three maps a run adds to, when:

- nothing the index is read from changed since the last run of this process (a hit), or
- the only changes are what runs make — new contacts, their addresses, new leads' addresses — whose rows are
  then read and added (``matching.load.with_new_rows``; a patch).

Any other change (an address edited, a contact deleted, an opportunity won, a domain added …) reads the whole
index again, as before.

Exactness: the token is taken before the index is read, and the database's own triggers record every write
to the tables the index is read from, whoever made it. A change committed while the index was being read is
therefore counted as new next time (a needless rebuild or re-added rows, never a stale index). Entries are
also read whole after ``MAX_AGE_SECONDS`` whatever happens, and the PostgreSQL change record is pruned of
writes older than ``PRUNE_AFTER_SECONDS``, far longer.

Only a run's first index comes from here, read in a fresh session with nothing written: an index rebuilt
after a failed batch is read inside that batch's transaction and is never kept.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass, replace

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from crm_store import index_changes
from sync_service.matching.load import build_index, with_new_rows
from sync_service.matching.model import CandidateIndex

log = logging.getLogger(__name__)

MAX_AGE_SECONDS = 600.0  # an entry is rebuilt at least this often, changed or not
PRUNE_AFTER_SECONDS = 86_400.0  # PostgreSQL: the change record keeps a day of writes (entries live 10 minutes)
PRUNE_EVERY_SECONDS = 3_600.0  # and a process prunes it at most this often


@dataclass(frozen=True)
class _Entry:
    settings: tuple[frozenset[str], str]  # the internal domains and phone region it was built with
    token: index_changes.Token
    index: CandidateIndex
    built: float  # time.monotonic()


class IndexCache:
    """One engine's kept index. ``hits``, ``patches`` and ``builds`` count what ``index`` did (tests,
    benchmarks): reused as it was, with the new contacts' and leads' rows added, read whole."""

    def __init__(self) -> None:
        self._entry: _Entry | None = None
        self._installed: bool | None = None  # were the triggers there at the last read of the whole index?
        self._pruned = float("-inf")
        self.hits = 0
        self.patches = 0
        self.builds = 0

    def index(self, session: Session, internal_domains: frozenset[str], region: str) -> CandidateIndex:
        """A candidate index of the CRM as committed now, for one run to use and add to."""
        settings = (internal_domains, region)
        connection = session.connection()
        entry = self._entry
        now = time.monotonic()
        if entry is not None and entry.settings == settings and now - entry.built < MAX_AGE_SECONDS:
            try:
                kept = self._follow(connection, entry)
            except SQLAlchemyError as error:  # the record is gone (or unreadable): read the CRM instead
                log.warning("could not read the CRM change record, the index is read again: %s", error)
                session.rollback()  # nothing else was done in this fresh session
                connection = session.connection()
                kept = None
            if kept is not None:
                return for_a_run(kept)
        # Rebuilt: first, are the triggers (still) there? A kept index is only as good as the change record.
        installed = index_changes.installed(connection)
        if installed != self._installed and not installed:
            log.warning("the CRM change triggers are missing (migration 0008): the index is built for every run")
        self._installed = installed
        token = index_changes.token(connection) if installed else None
        index = build_index(session, internal_domains, region, threads=False)
        if token is None:
            self._entry = None
            return index
        self.builds += 1
        self._entry = _Entry(settings, token, index, now)
        self._prune(session.get_bind(), now)
        return for_a_run(index)

    def _follow(self, connection: Connection, entry: _Entry) -> CandidateIndex | None:
        """The kept index as of now if what changed since allows (nothing, or only what ``with_new_rows``
        adds); ``None``: read the CRM again."""
        changes, token = index_changes.changes_since(connection, entry.token)
        if token is None:
            return None
        if not changes:
            self._entry = replace(entry, token=token)  # a later token: a shorter range to look in next time
            self.hits += 1
            return entry.index
        if not changes <= index_changes.PATCHABLE:
            return None
        rows = index_changes.new_rows(connection, entry.token, {table for table, _kind in changes})
        index = with_new_rows(entry.index, rows.get("contacts", ()), rows.get("contact_emails", ()),
                              rows.get("lead_emails", ()))  # fmt: skip
        self._entry = replace(entry, token=token, index=index)  # rebuilt whole when ``built`` is old enough
        self.patches += 1
        return index

    def _prune(self, bind: object, now: float) -> None:
        if now - self._pruned < PRUNE_EVERY_SECONDS or not isinstance(bind, Engine):
            return
        self._pruned = now
        try:
            with bind.begin() as connection:  # a short transaction of its own, not the run's
                gone = index_changes.prune(connection, PRUNE_AFTER_SECONDS)
            if gone:
                log.info("pruned %d old entries of the CRM change record", gone)
        except SQLAlchemyError as error:  # the record is only longer: nothing is wrong
            log.warning("could not prune the CRM change record: %s", error)


def for_a_run(index: CandidateIndex) -> CandidateIndex:
    """The kept index as one run may use it: its own copies of the maps a run adds to (new contacts and leads,
    the threads its batches load), the rest shared. The domain facts cache is shared too: it depends only on
    the domains, accounts' domains and never-log list, which a kept index never changes."""
    return replace(
        index,
        contacts_by_email=dict(index.contacts_by_email),
        contact_account=dict(index.contact_account),
        leads_by_email=dict(index.leads_by_email),
        thread_opportunity={},
        domain_cache=index.domain_cache,
    )


_CACHES: weakref.WeakKeyDictionary[Engine, IndexCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def cache_for(engine: Engine) -> IndexCache:
    """The engine's index cache (one per engine: its database, its process)."""
    with _CACHES_LOCK:
        cache = _CACHES.get(engine)
        if cache is None:
            cache = _CACHES[engine] = IndexCache()
        return cache


def run_index(session: Session, internal_domains: frozenset[str], region: str) -> CandidateIndex:
    """A processing run's first index: the kept one when nothing it was read from has changed."""
    bind = session.get_bind()
    if not isinstance(bind, Engine):
        return build_index(session, internal_domains, region, threads=False)
    return cache_for(bind).index(session, internal_domains, region)

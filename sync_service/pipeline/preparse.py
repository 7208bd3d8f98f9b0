"""Parsing the next batch in a helper process while this process matches and writes the current one.

Parsing (MIME headers and bodies, invitations, calendars, address books) is pure: the same bytes and options
always give the same values. So a processing run with many pending items hands each next batch's stored
bytes to a small pool of parser processes (``ParseAhead``) and, when it reaches that batch, takes what they
parsed instead of parsing again. On a machine with a spare core the two stages overlap.

The helpers decode only the bodies the run will need: they match each email's headers against a copy of the
run's candidate index (made when the run starts) and leave out the body of an email that would be skipped —
bulk and automated mail, internal mail, mail no CRM record is party to. The run still decides every email
itself, with the index as it is by then; in the rare case that it logs an email the copy would have skipped
(a lead created earlier in the run, say), it decodes the body itself.

Nothing depends on the helpers. Their results are keyed by the item's kind and content hash, so a result
can never be applied to other bytes; a part that failed to parse (or a pool that broke) is simply missing,
and the processing parses that part itself, raising and quarantining exactly as it always does.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from crm_store.blobs import Located, read_located
from sync_service.matching.decide import skip_reason
from sync_service.matching.model import AutoCreatePolicy, CandidateIndex
from sync_service.parsing.ical import parse_calendar
from sync_service.parsing.mime import parse_body, parse_headers
from sync_service.parsing.vcard import parse_vcards
from sync_service.pipeline.email_facts import facts_of
from sync_service.values import ContactCard, MessageBody, MessageHeaders, ParsedCalendar, SyncWindow

log = logging.getLogger(__name__)
T = TypeVar("T")
Key = tuple[str, str]  # (raw item kind, sha256 of its bytes)
# kind, sha256, the mailbox owner's address, and the bytes or where they are stored (the helper reads them)
Item = tuple[str, str, str, bytes | Located]


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """The settings parsing depends on (the same for every item of a run)."""

    window: SyncWindow
    max_occurrences: int
    max_attachment_bytes: int
    index: CandidateIndex | None = None  # the run's index when it started: which bodies will be needed
    policy: AutoCreatePolicy = "account-domains"


@dataclass(frozen=True, slots=True)
class Parsed:
    """What parsing one stored item gave. A part is ``None`` when it was not parsed or its parsing raised:
    the processing then parses it itself (and handles the error there)."""

    headers: MessageHeaders | None = None
    body: MessageBody | None = None
    calendars: tuple[ParsedCalendar, ...] | None = None  # an email's text/calendar parts, all of them
    calendar: ParsedCalendar | None = None  # a calendar item
    cards: tuple[list[ContactCard], list[str]] | None = None  # an address book: (cards, problems)
    size: int = -1  # the item's size in bytes (-1: not read)
    invitation: bool = False  # an email that mentions text/calendar (its calendar parts are in ``calendars``)


def parsed_whole(kind: str, parsed: Parsed | None) -> bool:
    """Whether ``parsed`` holds what the processing needs of an item of ``kind``, so that it need not read the
    item's bytes — unless it logs an email whose body the helper left out as not needed, or an error makes it
    parse again (it then reads them)."""
    if parsed is None:
        return False
    if kind == "message":
        complete = parsed.headers is not None and parsed.size >= 0
        return complete and (not parsed.invitation or parsed.calendars is not None)
    if kind == "calendar":
        return parsed.calendar is not None
    if kind == "contacts":
        return parsed.cards is not None
    return False


def _attempt(parse: Callable[[], T]) -> T | None:
    try:
        return parse()
    except Exception:  # the processing parses it again and reports the error itself
        return None


def parse_item(kind: str, data: bytes, options: ParseOptions, owner: str = "") -> Parsed:
    """Everything the processing stage may need parsed from one stored item (``owner``: the address of the
    rep whose mailbox it came from)."""
    if kind == "message":
        headers = _attempt(lambda: parse_headers(data))
        if headers is None:
            return Parsed()
        invitation = b"text/calendar" in data
        if not invitation and _skipped(headers, owner, options):
            return Parsed(headers=headers, size=len(data))
        body = _attempt(lambda: parse_body(data, max_attachment_bytes=options.max_attachment_bytes))
        calendars = None
        if body is not None and invitation:
            calendars = _attempt(
                lambda: tuple(
                    parse_calendar(part, options.window, max_occurrences=options.max_occurrences)
                    for part in body.calendar_parts
                )
            )
        return Parsed(headers=headers, body=body, calendars=calendars, size=len(data), invitation=invitation)
    if kind == "calendar":
        limit = options.max_occurrences
        return Parsed(calendar=_attempt(lambda: parse_calendar(data, options.window, max_occurrences=limit)))
    if kind == "contacts":
        return Parsed(cards=_attempt(lambda: parse_vcards(data)))
    return Parsed()


def _skipped(headers: MessageHeaders, owner: str, options: ParseOptions) -> bool:
    """Whether the email would be skipped (SPEC §3, rule 1), so that its body is not needed. Bulk and
    automated mail always is; the rest as the copy of the index says."""
    if headers.automated_reason:
        return True
    index = options.index
    if index is None:
        return False
    reason = _attempt(lambda: skip_reason(facts_of(headers, owner), index, policy=options.policy) or "")
    return bool(reason)


def parse_many(items: Sequence[Item], options: ParseOptions) -> dict[Key, Parsed]:
    """``parse_item`` for each (kind, sha256, owner, bytes or their location). Stored bytes are read here,
    each pack file opened once; an item whose bytes are missing or damaged is left out (the processing reads
    it itself, and quarantines it when they are missing there too)."""
    located = read_located({sha: data for _kind, sha, _owner, data in items if isinstance(data, Located)})
    parsed: dict[Key, Parsed] = {}
    for kind, sha, owner, data in items:
        content = data if isinstance(data, bytes) else located.get(sha)
        if content is not None:
            parsed[(kind, sha)] = parse_item(kind, content, options, owner)
    return parsed


_OPTIONS: ParseOptions | None = None  # a helper process's options, set once when it starts
PARENT_CHECK_SECONDS = 1.0


def _start_helper(options_file: str, parent: int) -> None:
    global _OPTIONS
    with open(options_file, "rb") as file:
        _OPTIONS = pickle.load(file)
    threading.Thread(target=_exit_with_parent, args=(parent,), name="parent-watch", daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A helper waits for work on a pipe its parent also holds; if the parent is killed, nothing would ever
    close it and the helper would wait forever. So it leaves as soon as it has a different parent."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _parse_in_helper(items: Sequence[Item]) -> dict[Key, Parsed]:
    assert _OPTIONS is not None, "not a parser process"
    return parse_many(items, _OPTIONS)


class ParseAhead:
    """A pool of ``processes`` parser processes and the batches handed to it, oldest first (``submit`` /
    ``take``). ``depth`` batches are kept in hand, so the helpers always have the next one to parse while
    the run works through the current one.

    The processes are started with ``spawn``: the caller may run threads (the embedded queue's workers), and
    forking a process that has threads can copy a lock some other thread holds.

    The options, with the copy of the candidate index, reach each helper once, when it starts, through a file
    in ``spool`` (private to this user; removed at ``close``), not in the start-up message: ``spawn`` writes
    that message into a pipe the starting process reads, and if the process dies before reading it all — say
    its parent's main module cannot be imported again, as for a script read from standard input — a message
    larger than the pipe's buffer would block the run forever. With a small message the pool sees the dead
    process and the run parses by itself."""

    def __init__(self, processes: int, options: ParseOptions, depth: int = 2, spool: str | None = None) -> None:
        self.processes = max(1, processes)
        self.depth = max(1, depth)
        context = multiprocessing.get_context("spawn")
        handle, self._options_file = tempfile.mkstemp(prefix=".parse-options-", suffix=".pickle", dir=spool)
        with os.fdopen(handle, "wb") as file:
            pickle.dump(options, file, pickle.HIGHEST_PROTOCOL)
        try:  # each batch then sends only bytes
            self._pool = ProcessPoolExecutor(
                self.processes, context, initializer=_start_helper, initargs=(self._options_file, os.getpid())
            )
        except BaseException:
            os.unlink(self._options_file)
            raise
        # Per submitted batch: its bytes by sha256 (read once, used twice) and the helpers' futures.
        self._batches: deque[tuple[dict[str, bytes], list[Future[dict[Key, Parsed]]]]] = deque()
        self.broken = False

    @property
    def waiting(self) -> int:
        """Batches submitted and not taken yet."""
        return len(self._batches)

    def submit(self, items: Sequence[Item]) -> None:
        """Start parsing one batch: (kind, sha256, owner, bytes or their location) of its items."""
        blobs = {sha: data for _kind, sha, _owner, data in items if isinstance(data, bytes)}
        futures: list[Future[dict[Key, Parsed]]] = []
        self._batches.append((blobs, futures))
        if self.broken or not items:
            return
        size = -(-len(items) // self.processes)
        try:
            for start in range(0, len(items), size):
                futures.append(self._pool.submit(_parse_in_helper, items[start : start + size]))
        except Exception as error:  # a pool that cannot take work: the processing parses alone
            self._broke(error)

    def take(self) -> tuple[dict[str, bytes], dict[Key, Parsed]]:
        """The oldest submitted batch: the bytes it was given (not those it was told where to find) and what
        the helpers parsed of it (waits for them; nothing parsed after a failure). Both empty when no batch is
        waiting."""
        if not self._batches:
            return {}, {}
        blobs, futures = self._batches.popleft()
        parsed: dict[Key, Parsed] = {}
        for future in futures:
            try:
                parsed.update(future.result())
            except Exception as error:  # a helper died or could not send its result
                self._broke(error)
                return blobs, {}
        return blobs, parsed

    def _broke(self, error: BaseException) -> None:
        if not self.broken:
            log.warning("parsing ahead stopped; the processing parses by itself: %s: %s", type(error).__name__, error)
        self.broken = True

    def close(self) -> None:
        self._batches.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(OSError):
            os.unlink(self._options_file)

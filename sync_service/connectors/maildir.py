"""``maildir:///path`` — a Maildir with its Maildir++ subfolders, read strictly read-only.

Folders: ``"."`` (the root) then each Maildir++ subfolder ``.Sent``, ``.Archive.2023`` … as ``"Sent"``,
``"Archive.2023"`` (sorted; names are kept as stored on disk). A folder's messages are the files in ``new/``
and ``cur/``; ``tmp/`` holds deliveries in progress and is ignored, as are hidden files.

External id = the Maildir unique key (the file name before ``:2,`` / ``!2,``), so a flag change (rename) or
a ``new/`` → ``cur/`` move is not a change; version = the file size (Maildir messages are immutable). A name
that is not UTF-8 gets its undecodable bytes as ``\\xNN`` escapes in the id (``localpath.text_id``). As they
are immutable, a listing stats only the files its cursor does not know yet: a re-sync of a large Maildir
reads the directories, not every file's inode.
A folder whose ``new/`` and ``cur/`` (and, for the root, the root itself) still have the modification times
the last complete listing saw is not read at all — adding, removing or renaming a message changes them — as
long as those times were at least two seconds older than that listing (``SETTLED_NS``: a coarse file-system
clock could otherwise give a message that arrived just after it the same time). The root is always read when
it holds calendar or contact files, which can change in place.
The cursor keeps ``cur/``'s part of the snapshot apart (``md3.<cur base>|<cur delta>|<the rest>``, each part a
file-source cursor; ``md2.<cur part>|<the rest>`` of before is read as a base without delta). When only
``new/`` changed — new mail that no client has seen yet — and ``cur/`` still has the settled modification time
of the last complete listing, ``cur/`` is neither read nor decoded, and its part of the cursor is carried over
as it is: a re-sync of a large Maildir then reads and diffs only ``new/``. When ``cur/`` did change — a client
read or flagged mail, or it was delivered there — its base is carried over as it is and only its delta (the
messages added since the base, and tombstones ``-`` for those gone) is written anew, until the delta is an
eighth of the base (``FOLD_SHARE``): then the two are written as a new base. A re-sync then encodes the few
changes instead of the whole of ``cur/``; and a long-running process keeps the bases it decoded or wrote
(``BASES``, bounded), so its next listing of the folder does not decode the base again.
``new/`` is read before ``cur/`` so a message moving between them during a scan is seen at least once, and
a snapshot id that seems gone is confirmed by a second scan before it is reported deleted (a rename
racing with the directory read can hide a file once).

The root may also hold calendar and contact files next to the mail: ``*.ics`` → kind ``calendar``, id
``ics:<name>``; ``*.vcf`` → kind ``contacts``, id ``vcf:<name>``; version ``mtime_ns:size``.
Nothing is ever written: no flags, no moves, no ``seen`` marks.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from sync_service.connectors.base import ChangePage, ItemKind, ItemRef, RawItem
from sync_service.connectors.localpath import (
    FileEntry,
    entry_stat,
    kind_for,
    read_bytes,
    require_path,
    source_errors,
    stat_entry,
    text_id,
    url_to_path,
)
from sync_service.connectors.snapshot import ROOT_FOLDER, DiffPass, decode_state, encode_cursor, entries_pass
from sync_service.connectors.snapshot_cache import SnapshotCache
from sync_service.errors import PermanentSourceError

_INFO = re.compile(r"[:!][12],")
_LOOSE_PREFIX: dict[ItemKind, str] = {"calendar": "ics", "contacts": "vcf"}
_LOOSE_IDS = tuple(f"{prefix}:" for prefix in _LOOSE_PREFIX.values())
SETTLED_NS = 2_000_000_000  # directory times this much older than a scan are trusted (coarse file-system clocks)
SPLIT_PREFIX = "md2."  # a cursor with cur/'s part apart: md2.<cur part>|<the rest> (read, no longer written)
DELTA_PREFIX = "md3."  # the same with cur/'s part as a base and a delta: md3.<cur base>|<cur delta>|<the rest>
TOMBSTONE = "-"  # a cur/ delta's version for a message of the base that is gone (a size is never "-")
FOLD_SHARE = 8  # a delta with more than 1/FOLD_SHARE of the base's entries (and over FOLD_MIN) is folded in
FOLD_MIN = 256
BASES = SnapshotCache()  # cur/ bases decoded or written by this process, by their text (``snapshot_cache``)


def unique_key(file_name: str) -> str:
    """The Maildir unique key of a message file name (without the ``:2,FLAGS`` info part)."""
    key = file_name.partition(":2,")[0]  # the common form; the pattern only when another separator may come first
    return _INFO.split(key, maxsplit=1)[0] if "!" in key or ":1," in key else key


class MaildirConnector:
    def __init__(self, url: str, secret: str | None = None) -> None:
        self.root = require_path(url_to_path(url), "dir")
        self._located: dict[str, dict[str, str]] = {}
        # The listing of a pass that has more pages, kept with the cursor of its next page: listing a folder
        # scans and stats every file, so doing it once per pass instead of once per page keeps a large
        # initial sync linear. Files that arrive meanwhile are listed by the next pass.
        self._listing: dict[str, _Pass] = {}

    def folders(self) -> Sequence[str]:
        require_path(self.root, "dir")
        with source_errors(self.root), os.scandir(self.root) as entries:
            names = sorted(e.name[1:] for e in entries if _is_subfolder(e))
        return [ROOT_FOLDER, *names]

    def list_changes(self, folder: str, cursor: str | None, limit: int = 500) -> ChangePage:
        listed = self._listing.pop(folder, None)
        if listed is not None and listed.cursor == cursor:  # the next page of the same pass
            return self._next_page(folder, listed, limit)
        base_part, delta_part, rest_part = _split(cursor)
        rest, meta = decode_state(rest_part)
        marks = self._marks(folder, rest)
        if cursor is not None and marks is not None and _unchanged(meta, marks):
            return ChangePage((), (), cursor, False)
        # cur/'s part is kept as it is when cur/ has not changed since the listing that wrote it
        if base_part is not None and marks is not None and _cur_unchanged(meta, marks):
            kept: str | None = f"{base_part}|{delta_part}"
            base: _CurBase | None = None
            previous = rest
        else:
            kept = None
            cur_base = BASES.get(base_part, _snapshot) if base_part else {}
            base = _CurBase(base_part or "", cur_base, decode_state(delta_part)[0], rest)
            previous = {**_applied(base.snapshot, base.delta), **rest}
        scan = self._scan(folder, previous, with_cur=kept is None)
        if not scan.paths.keys() >= previous.keys():  # something seems gone: confirm with a second scan
            again = self._scan(folder, previous, with_cur=kept is None)
            scan = _Scan({**scan.paths, **again.paths}, {**scan.fresh, **again.fresh}, scan.in_cur | again.in_cur)
        self._located[folder] = scan.paths
        listing = _Pass(entries_pass(scan.fresh, previous, present=scan.paths), scan.in_cur, marks, kept, base)
        return self._next_page(folder, listing, limit)

    def _next_page(self, folder: str, listing: _Pass, limit: int) -> ChangePage:
        page = listing.diff.next_page(limit, listing.marks, listing.encode)
        if page.more:  # the marks go into the pass's last cursor
            listing.cursor = page.next_cursor
            self._listing[folder] = listing
        return page

    def fetch(self, folder: str, refs: Sequence[ItemRef]) -> Iterator[RawItem]:
        located = self._located.get(folder, {})
        rescanned = False
        for ref in refs:
            data = _read(located.get(ref.external_id))
            if data is None and not rescanned:  # moved (flags, new→cur) or never listed here: look again
                located = self._located[folder] = self._scan(folder).paths
                rescanned = True
                data = _read(located.get(ref.external_id))
            if data is not None:
                yield RawItem(ref, data)

    def close(self) -> None:
        self._located.clear()
        self._listing.clear()

    def _folder_dir(self, folder: str) -> Path:
        require_path(self.root, "dir")
        if folder == ROOT_FOLDER:
            return self.root
        path = self.root / f".{folder}"
        if not folder or "/" in folder or folder.startswith(".") or not (path / "cur").is_dir():
            raise PermanentSourceError(f"no Maildir folder {folder!r} in {self.root}")
        return path

    def _marks(self, folder: str, snapshot: Mapping[str, str]) -> dict[str, Any] | None:
        """What says "nothing changed" next time: the modification times of the folder's ``new/`` and ``cur/``
        (and, for the root, of the root itself), read before the scan, with the time the scan started. None
        where it cannot tell: the root when it holds calendar or contact files, which change in place."""
        directory = self._folder_dir(folder)
        subs = [directory / "new", directory / "cur"]
        if folder == ROOT_FOLDER:
            if any(key.startswith(_LOOSE_IDS) for key in snapshot):
                return None
            subs.append(directory)
        try:
            return {"dirs": [os.stat(sub).st_mtime_ns for sub in subs], "at": time.time_ns()}
        except OSError:
            return None

    def _scan(self, folder: str, known: Mapping[str, str] | None = None, with_cur: bool = True) -> _Scan:
        """The folder's files; a message in ``known`` (a snapshot) keeps its version there, unstat'ed.
        ``with_cur=False``: ``new/`` (and the root's loose files) only."""
        directory = self._folder_dir(folder)
        scan = _Scan({}, {}, set())
        with source_errors(directory):
            _scan_messages(str(directory / "new"), known or {}, scan)
            if with_cur:
                _scan_messages(str(directory / "cur"), known or {}, scan, scan.in_cur)
            if folder == ROOT_FOLDER:
                for key, entry in _scan_loose_files(directory).items():
                    scan.paths[key] = entry.path
                    scan.fresh[key] = entry
        return scan


class _CurBase(NamedTuple):
    """What a listing that reads ``cur/`` starts from: the cursor's ``cur/`` base, as written and decoded, its
    delta, and the snapshot of the rest (``new/`` and loose files)."""

    text: str  # the base as the cursor has it ("": none)
    snapshot: dict[str, str]
    delta: dict[str, str]  # versions, and TOMBSTONE for what is gone from the base
    rest: dict[str, str]


class _Pass:
    """A listing pass with more pages to come: its changes (``DiffPass``), and the split cursor's parts kept up
    to date page by page instead of being split again from the whole snapshot for each."""

    def __init__(
        self, diff: DiffPass, in_cur: set[str], marks: dict[str, Any] | None, kept: str | None, base: _CurBase | None
    ) -> None:
        self.diff, self.in_cur, self.marks, self.kept = diff, in_cur, marks, kept
        self.cursor: str | None = None  # the cursor of the page handed out last
        self._base = base or _CurBase("", {}, {}, {})
        self._parts: tuple[dict[str, str], dict[str, str]] | None = None  # (cur/'s delta, the rest's snapshot)
        self._split_upto = 0  # ``diff.changed[:_split_upto]`` are in ``_parts``

    def encode(self, snapshot: Mapping[str, str], meta: Mapping[str, Any] | None) -> str:
        """The cursor of ``snapshot`` (``diff.snapshot``, as of the page just taken)."""
        if self.kept is not None:  # cur/ unchanged: its part as it was
            return f"{DELTA_PREFIX}{self.kept}|{encode_cursor(snapshot, meta)}"
        base = self._base.snapshot
        if self._parts is None:
            self._parts = self._split(snapshot)
        else:
            delta, rest = self._parts
            for key in self.diff.changed[self._split_upto : self.diff.done]:
                if key not in self.in_cur:
                    rest[key] = snapshot[key]
                elif base.get(key) != snapshot[key]:
                    delta[key] = snapshot[key]
                else:  # back as the base has it
                    delta.pop(key, None)
        self._split_upto = self.diff.done
        delta, rest = self._parts
        if len(delta) > max(FOLD_MIN, len(base) // FOLD_SHARE):  # written as one new base
            cur = _applied(base, delta)
            self._base = _CurBase(encode_cursor(cur), cur, {}, {})
            BASES.put(self._base.text, cur)  # the next listing starts from this text: no decoding then
            delta.clear()
        delta_text = encode_cursor(delta) if delta else ""
        return f"{DELTA_PREFIX}{self._base.text}|{delta_text}|{encode_cursor(rest, meta)}"

    def _split(self, snapshot: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        """(``cur/``'s delta from the base, the rest's snapshot) of the first page's snapshot. With set
        operations, not a loop over every message: the keys whose version may differ from the base are those
        new to it and those the cursor had in its delta or its rest (the versions of the others are the
        base's, as a listing never re-reads a message its snapshot has)."""
        base, in_cur = self._base.snapshot, self.in_cur
        cur = snapshot.keys() & in_cur
        delta = dict.fromkeys(base.keys() - cur, TOMBSTONE)
        maybe = (cur - base.keys()) | (cur & self._base.delta.keys()) | (cur & self._base.rest.keys())
        delta.update((key, snapshot[key]) for key in maybe if base.get(key) != snapshot[key])
        return delta, {key: snapshot[key] for key in snapshot.keys() - in_cur}


def _snapshot(text: str) -> dict[str, str]:
    return decode_state(text)[0]


def _applied(base: Mapping[str, str], delta: Mapping[str, str]) -> dict[str, str]:
    """``cur/``'s snapshot: the base with its delta applied."""
    cur = dict(base)
    for key, version in delta.items():
        if version == TOMBSTONE:
            cur.pop(key, None)
        else:
            cur[key] = version
    return cur


class _Scan(NamedTuple):
    """A folder's listing: every message's path, and the entries of those its snapshot does not have."""

    paths: dict[str, str]  # unique key → file path, for everything present
    fresh: dict[str, FileEntry]  # the new (stat'ed) ones, and every loose calendar / contact file
    in_cur: set[str]  # the keys found in cur/


def _unchanged(meta: Mapping[str, Any], marks: Mapping[str, Any]) -> bool:
    """The folder is as the cursor's scan left it: the same directory modification times, and those times
    were at least ``SETTLED_NS`` older than that scan, so a file added within the file system's timestamp
    granularity of the scan could not have kept them."""
    dirs, at = meta.get("dirs"), meta.get("at")
    if dirs != marks["dirs"] or not isinstance(at, int) or not isinstance(dirs, list) or not dirs:
        return False
    return all(isinstance(t, int) and at - t >= SETTLED_NS for t in dirs)


def _cur_unchanged(meta: Mapping[str, Any], marks: Mapping[str, Any]) -> bool:
    """``cur/`` is as the cursor's last complete listing left it (as ``_unchanged``, for ``cur/`` alone)."""
    dirs, at = meta.get("dirs"), meta.get("at")
    if not isinstance(dirs, list) or len(dirs) < 2 or not isinstance(at, int):
        return False
    cur = dirs[1]
    return isinstance(cur, int) and cur == marks["dirs"][1] and at - cur >= SETTLED_NS


def _split(cursor: str | None) -> tuple[str | None, str | None, str | None]:
    """(``cur/``'s base, its delta, the rest) of a cursor. An ``md2.`` cursor's ``cur/`` part is a base without
    delta; a cursor in the one-part form of before is all "rest"; a split cursor without all its separators
    counts as none (a full listing follows)."""
    if cursor is None or not cursor.startswith((SPLIT_PREFIX, DELTA_PREFIX)):
        return None, None, cursor
    if cursor.startswith(SPLIT_PREFIX):
        cur, separator, rest = cursor[len(SPLIT_PREFIX) :].partition("|")
        return (cur, "", rest) if separator else (None, None, None)
    base, separator, tail = cursor[len(DELTA_PREFIX) :].partition("|")
    delta, separator_2, rest = tail.partition("|")
    return (base, delta, rest) if separator and separator_2 else (None, None, None)


def _is_subfolder(entry: os.DirEntry[str]) -> bool:
    return (entry.name.startswith(".") and entry.name not in (".", "..") and entry.is_dir()
            and os.path.isdir(os.path.join(entry.path, "cur")))


def _scan_messages(directory: str, known: Mapping[str, str], scan: _Scan, found: set[str] | None = None) -> None:
    """Add a ``new/`` or ``cur/`` directory's messages to ``scan``.

    Messages are immutable, so one the snapshot knows keeps its version: it is neither stat'ed nor given a
    ``FileEntry`` — only its path is kept, for ``fetch`` — and a re-sync of 20,000 messages costs one
    directory read. Any other visible name is stat'ed: a regular file is fresh, anything else is skipped."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return
    paths, fresh = scan.paths, scan.fresh
    prefix = directory + os.sep
    for name in names:
        if name[:1] == ".":  # is_hidden, inlined
            continue
        key = name.partition(":2,")[0]  # unique_key, inlined: 20,000 calls
        if "!" in key or ":1," in key:
            key = unique_key(key)
        if not key.isascii():
            key = text_id(key)
        path = prefix + name
        if found is not None:
            found.add(key)
        if key in known:
            paths[key] = path
            continue
        try:
            st = os.stat(path)
        except FileNotFoundError:  # renamed or removed meanwhile: the next listing sees the truth
            continue
        if stat.S_ISREG(st.st_mode):
            paths[key] = path
            fresh[key] = stat_entry(path, "message", st, str(st.st_size))


def _scan_loose_files(directory: Path) -> dict[str, FileEntry]:
    found: dict[str, FileEntry] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            kind = kind_for(entry.name)
            prefix = _LOOSE_PREFIX.get(kind) if kind is not None else None
            st = entry_stat(entry) if prefix is not None else None
            if kind is not None and st is not None:
                found[f"{prefix}:{text_id(entry.name)}"] = stat_entry(entry.path, kind, st)
    return found


def _read(path: str | None) -> bytes | None:
    return read_bytes(path) if path is not None else None

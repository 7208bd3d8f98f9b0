"""Pack compaction: give back the space of stored blobs that nothing refers to any more (``crm-sync purge``).

Referenced: a row names the blob's sha256 in ``raw_items`` (except raw items in a state the caller says holds
no bytes: ``released_states``, the purged ones of ``sync_service.retention``), in ``documents`` or in
``synced_items`` — every column that holds the hash of stored bytes. ``packed_blobs`` is the index that says
where the bytes are, not a reference.

What a run (``compact``) does to a pack P whose file is older than ``min_age`` and holds bytes nobody refers to:

- ``delete``: none of its blobs is referenced: all its index rows are deleted;
- ``rewrite``: its referenced bytes are less than ``rewrite_below`` of the file: they are copied into a new pack
  N (each checked against its hash; N is written under a temporary name, flushed to disk and renamed into
  place), then ONE transaction points their index rows at N and deletes P's other rows;
- ``drop``: otherwise only the rows of its unreferenced blobs are deleted; their bytes stay in P until it falls
  below the threshold (``rewrite_below`` 1.0 rewrites every such pack: none of those bytes stays on disk).

Before that transaction a manifest, ``blobs/compaction/<P>.json``, lists the rows it deletes (and N), and the
transaction checks that none of those blobs is referenced by then (else P is left as it is, for a later run).
Unreferenced loose files among the blobs the caller names (``loose``: purged messages over a pack writer's
budget were stored whole; ``unreferenced_loose``: every file no row refers to, older than ``min_age`` — the
fetched messages of a removed mailbox, whose raw items went with it) are moved into ``blobs/compaction/`` under
a manifest the same way. A deleted or rewritten pack, and a moved loose file, is then *held*: its file is
deleted only once it has been held for ``min_age`` (``settle``, at the end of this run or of a later one).

Why holding, and why it is safe while syncs run:

- A sync that finds a blob stored already (``BlobStore.stored``: indexed, or a file) commits a raw item naming
  it without writing the bytes again (the message in a second mailbox, a full resync), up to a page's fetch
  later. Once the index row (or the loose file) is gone no sync decides so any more, and one that decided before
  commits within ``min_age``: the bound ``BlobStore.unreferenced_packs`` (``crm-sync blobs orphans``) relies on
  for a page's pack file. When a held file is settled, every blob dropped from it that is referenced by then and
  stored nowhere else is first copied back into the store (``put``): nothing a committed row names is lost. (In
  between, the processing reads such a blob as missing and quarantines its item; ``quarantine retry`` after the
  settle processes it.)
- A reader that located a blob in P just before the transaction reads P afterwards: a held pack stays where it
  is until it is settled. ``blobs orphans`` (which lists rowless packs older than its own minimum age) never
  offers a pack a manifest names (``BlobStore.held_packs``), whatever that age: a held pack is this module's to
  delete, after its own ``min_age``. (Its modification time is also set to when it was held.) (A loose file
  is moved at once: it is never referenced when it is moved, so only a sync racing as above can miss it.)
- A pack younger than ``min_age`` is never touched, nor is one with a manifest not settled yet: a sync may be
  about to commit the rows that name a young pack (a page's pack is renamed into place before its transaction
  commits); what dies in it is compacted by a later run.
- One compaction at a time: a run holds an exclusive lock on ``blobs/compaction/.lock`` (``exclusive``).

Crash safety: before the transaction commits, nothing any row names has changed (N is named by no row: an
orphan that ``blobs orphans`` lists, and that the next run deletes with the manifest). After the commit, the
manifest says what was dropped and from where; the next run holds and settles it. A crash at any point leaves
at worst an unreferenced file; the bytes a row names are never deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, delete, exists, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from crm_store.blobs import COMPACTION_DIR, BlobStore, PackedEntry, sha256_hex
from crm_store.db import one_of, transaction
from crm_store.models import Document, PackedBlob, RawItem, SyncedItem
from sync_service.errors import ConfigError

DELETE, REWRITE, DROP = "delete", "rewrite", "drop"
REWRITE_BELOW = 0.5  # a pack whose referenced bytes are less than this share of its file is rewritten
DEFAULT_MIN_AGE = 3600.0  # seconds: as ``BlobStore.unreferenced_packs``
_CHUNK = 500  # digests per IN (...) list
_PAGE = 20_000  # rows per page when every row of a table is read
_PACKED = cast(Table, PackedBlob.__table__)


@dataclass(frozen=True, slots=True)
class PackState:
    """One pack file as the index and the file system see it."""

    name: str
    size: int  # bytes in the file
    live: tuple[PackedEntry, ...]  # rows of referenced blobs
    dead: tuple[PackedEntry, ...]  # rows of blobs nothing refers to

    @property
    def live_bytes(self) -> int:
        return sum(entry.length for entry in self.live)


def choose(pack: PackState, rewrite_below: float = REWRITE_BELOW) -> str | None:
    """What to do with a pack (pure): ``delete``, ``rewrite``, ``drop`` or nothing (``None``)."""
    if not pack.live:
        return DELETE if pack.dead else None
    if pack.live_bytes < rewrite_below * pack.size:
        return REWRITE
    return DROP if pack.dead else None


@dataclass(frozen=True)
class Plan:
    """What a compaction would do, decided over the index and the files as they are."""

    packs: tuple[tuple[PackState, str], ...] = ()  # with their action
    loose: tuple[tuple[str, int], ...] = ()  # unreferenced loose files: sha256, size
    young: int = 0  # packs holding unreferenced bytes, left alone: younger than ``min_age`` or being held
    missing: int = 0  # packs the index names whose file is gone (their blobs read as missing)

    def preview(self) -> CompactReport:
        report = CompactReport(young=self.young, missing=self.missing)
        for pack, action in self.packs:
            report.count(pack, action, pack.live_bytes)
        report.loose_held = len(self.loose)
        report.released += sum(size for _sha, size in self.loose)
        return report


@dataclass
class CompactReport:
    packs_deleted: int = 0
    packs_rewritten: int = 0
    packs_thinned: int = 0  # ``drop``: rows of unreferenced blobs deleted, the pack kept
    loose_held: int = 0
    released: int = 0  # bytes of files held by this run (deleted once held for min_age)
    unindexed: int = 0  # unreferenced bytes dropped from the index, still inside packs that stay
    young: int = 0
    missing: int = 0
    damaged: int = 0  # packs left as they are: a referenced blob in them does not match its hash
    changed: int = 0  # packs left as they are: one of their blobs became referenced meanwhile
    freed: int = 0  # bytes of held files deleted by this run (held by it or an earlier one)
    held: int = 0  # bytes still held, freed by a run once they have been held for min_age
    restored: int = 0  # dropped blobs referenced again by the time they were settled: stored again

    def count(self, pack: PackState, action: str, new_size: int) -> None:
        if action == DROP:
            self.packs_thinned += 1
            self.unindexed += sum(entry.length for entry in pack.dead)
            return
        if action == DELETE:
            self.packs_deleted += 1
        else:
            self.packs_rewritten += 1
        self.released += pack.size - new_size

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


# ------------------------------------------------------------------------------------------- references


def referenced(
    session: Session,
    digests: Iterable[str],
    released_states: Collection[str] = (),
    *,
    ignore_raw_items: Collection[int] = (),
    ignore_items: Collection[int] = (),
) -> set[str]:
    """Which of ``digests`` a row refers to (see the module docstring). ``ignore_raw_items``, ``ignore_items``:
    raw items and synced items whose references do not count (a dry run: the ones a purge would release)."""
    wanted = list(dict.fromkeys(digests))
    dialect = session.get_bind().dialect.name
    skip_raws, skip_items = set(ignore_raw_items), set(ignore_items)
    found: set[str] = set()
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        raw = select(RawItem.id, RawItem.sha256).where(one_of(RawItem.sha256, chunk, dialect))
        if released_states:
            raw = raw.where(RawItem.state.not_in(list(released_states)))
        items = select(SyncedItem.id, SyncedItem.sha256).where(one_of(SyncedItem.sha256, chunk, dialect))
        for stmt, skip in ((raw, skip_raws), (items, skip_items)):
            found.update(sha for row_id, sha in session.execute(stmt) if sha and row_id not in skip)
        found.update(session.scalars(select(Document.sha256).where(one_of(Document.sha256, chunk, dialect)).distinct()))
    return found


def _unreferenced_rows(session: Session, released_states: Collection[str]) -> Iterator[PackedEntry]:
    """The index rows of blobs nothing refers to: one anti-join (no index on the referring columns is needed:
    PostgreSQL hashes them; SQLite builds each ``NOT IN`` list once)."""
    states = list(released_states)
    if session.get_bind().dialect.name == "postgresql":
        raw_ref = exists().where(RawItem.sha256 == PackedBlob.sha256)
        if states:
            raw_ref = raw_ref.where(RawItem.state.not_in(states))
        unreferenced = and_(
            ~raw_ref,
            ~exists().where(Document.sha256 == PackedBlob.sha256),
            ~exists().where(SyncedItem.sha256 == PackedBlob.sha256),
        )
    else:
        raws = select(RawItem.sha256).where(RawItem.sha256.is_not(None))
        if states:
            raws = raws.where(RawItem.state.not_in(states))
        unreferenced = and_(
            PackedBlob.sha256.not_in(raws),
            PackedBlob.sha256.not_in(select(Document.sha256)),
            PackedBlob.sha256.not_in(select(SyncedItem.sha256).where(SyncedItem.sha256.is_not(None))),
        )
    columns = (PackedBlob.sha256, PackedBlob.pack, PackedBlob.offset, PackedBlob.length)
    for row in session.execute(select(*columns).where(unreferenced)):
        yield PackedEntry(*row)


# ------------------------------------------------------------------------------------------------ files


class _Paths:
    def __init__(self, store: BlobStore) -> None:
        base = Path(store.root) / "blobs"
        self.packs = base / "packs"
        self.held = base / COMPACTION_DIR

    def pack(self, name: str) -> Path:
        if "/" in name or name.startswith(".") or not name.endswith(".pack"):
            raise ValueError(f"not a pack file name: {name!r}")
        return self.packs / name

    def manifests(self) -> list[Path]:
        if not self.held.is_dir():
            return []
        return sorted(p for p in self.held.glob("*.json") if not p.name.startswith("."))  # not a half-written one


def _write_json(path: Path, value: dict[str, Any]) -> None:
    """Atomically: a crash leaves the old manifest or the new one, never half of one."""
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(value, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _sync_dir(path.parent)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Damaged(Exception):
    """A referenced blob's packed bytes do not match its hash: the pack is left as it is."""


def _copy_live(paths: _Paths, source: Path, live: tuple[PackedEntry, ...]) -> tuple[str, dict[str, int]]:
    """Copy the live blobs of ``source`` into a new pack, checked against their hashes; returns its name and the
    new offsets. The file is flushed to disk and in place when this returns; no row names it yet (a crash from
    here on leaves an orphan pack, as a killed sync does). Written as ``BlobStore.pack_writer`` names its files."""
    name = f"{uuid.uuid4().hex}.pack"
    tmp = paths.packs / f".tmp-{name}"
    offsets: dict[str, int] = {}
    position = 0
    src = os.open(source, os.O_RDONLY)
    try:
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            for entry in live:
                data = os.pread(src, entry.length, entry.offset)
                if len(data) != entry.length or sha256_hex(data) != entry.sha256:
                    raise _Damaged(entry.sha256)
                view = memoryview(data)
                while view:
                    view = view[os.write(out, view) :]
                offsets[entry.sha256] = position
                position += entry.length
            os.fsync(out)
        finally:
            os.close(out)
        os.replace(tmp, paths.packs / name)
        _sync_dir(paths.packs)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(src)
    return name, offsets


@contextlib.contextmanager
def exclusive(store: BlobStore) -> Iterator[None]:
    """One compaction at a time on this blob store (a lock file under ``blobs/compaction/``)."""
    paths = _Paths(store)
    paths.held.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.held / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError("another purge is compacting the blob store; run it again once that one ends") from None
        yield
    finally:
        os.close(fd)  # releases the lock


# --------------------------------------------------------------------------------------------- planning


def plan(
    store: BlobStore,
    session: Session,
    *,
    released_states: Collection[str] = (),
    loose: Iterable[str] = (),
    min_age: float = DEFAULT_MIN_AGE,
    rewrite_below: float = REWRITE_BELOW,
    now: float | None = None,
    unreferenced: Collection[str] = (),
) -> Plan:
    """Decide what to compact, over the index and the files as they are now. ``unreferenced``: blobs to count as
    referenced by nothing although rows still name them (a dry run: what the purge would release)."""
    now = time.time() if now is None else now
    paths = _Paths(store)
    busy = _held_packs(paths)
    dead: dict[str, list[PackedEntry]] = defaultdict(list)
    seen: set[str] = set()
    for entry in itertools.chain(_unreferenced_rows(session, released_states), _index(session, unreferenced)):
        if entry.sha256 not in seen:
            seen.add(entry.sha256)
            dead[entry.pack].append(entry)
    totals = session.execute(
        select(PackedBlob.pack, func.count(), func.sum(PackedBlob.length)).group_by(PackedBlob.pack)
    )
    chosen: list[tuple[PackState, str]] = []
    young = missing = 0
    for name, count, length in totals:
        try:
            stat = paths.pack(name).stat()
        except (OSError, ValueError):
            missing += 1
            continue
        gone = dead.get(name, [])
        if not gone and int(length or 0) >= rewrite_below * stat.st_size:
            continue  # the common case, decided without reading the pack's rows
        if stat.st_mtime > now - min_age or name in busy:
            young += 1
            continue
        state = _state(session, name, stat.st_size, gone, count)
        action = choose(state, rewrite_below)
        if action is not None:
            chosen.append((state, action))
    loose_dead = _dead_loose(store, session, itertools.chain(loose, unreferenced), released_states, unreferenced)
    return Plan(tuple(chosen), loose_dead, young, missing)


def _index(session: Session, digests: Collection[str]) -> Iterator[PackedEntry]:
    """The index rows of ``digests``."""
    wanted = list(digests)
    dialect = session.get_bind().dialect.name
    columns = (PackedBlob.sha256, PackedBlob.pack, PackedBlob.offset, PackedBlob.length)
    for start in range(0, len(wanted), _CHUNK):
        rows = session.execute(
            select(*columns).where(one_of(PackedBlob.sha256, wanted[start : start + _CHUNK], dialect))
        )
        yield from (PackedEntry(*row) for row in rows)


def _state(session: Session, name: str, size: int, dead: list[PackedEntry], count: int) -> PackState:
    if len(dead) == count:
        return PackState(name, size, (), tuple(dead))
    gone = {entry.sha256 for entry in dead}
    columns = (PackedBlob.sha256, PackedBlob.pack, PackedBlob.offset, PackedBlob.length)
    rows = session.execute(select(*columns).where(PackedBlob.pack == name).order_by(PackedBlob.offset))
    live = tuple(PackedEntry(*row) for row in rows if row.sha256 not in gone)
    return PackState(name, size, live, tuple(sorted(dead, key=lambda e: e.offset)))


def _dead_loose(
    store: BlobStore,
    session: Session,
    digests: Iterable[str],
    released_states: Collection[str],
    unreferenced: Collection[str],
) -> tuple[tuple[str, int], ...]:
    present: dict[str, int] = {}
    for digest in dict.fromkeys(digests):
        path = store.path_of(digest)
        with contextlib.suppress(OSError):
            present[digest] = path.stat().st_size
    if not present:
        return ()
    live = referenced(session, present, released_states) - set(unreferenced)
    return tuple((digest, size) for digest, size in present.items() if digest not in live)


def unreferenced_loose(
    store: BlobStore,
    session: Session,
    released_states: Collection[str] = (),
    *,
    min_age: float = DEFAULT_MIN_AGE,
    now: float | None = None,
) -> list[str]:
    """The blobs stored as files that no row refers to and that were written more than ``min_age`` ago: what a
    caller passes as ``loose`` to release every unreferenced file, not only those of rows it released itself —
    e.g. the fetched messages of a removed mailbox (``crm-sync mailbox remove`` deletes its raw items) stored whole
    over a pack writer's budget. The files are listed, then each referring table is read once, by pages of its id
    (no index on the hash columns is needed): one pass over the files and the three tables, whatever their number.
    Candidates only: ``plan`` and the hold check each one again. A file younger than ``min_age`` may be about to
    be named by a transaction that has not committed yet: left alone. (An older one a sync finds stored and names
    meanwhile is the race the hold covers: see the module docstring.)"""
    now = time.time() if now is None else now
    names = set(store.loose_digests())
    if not names:
        return []
    raw_live = RawItem.state.not_in(list(released_states)) if released_states else None
    for model, where in ((RawItem, raw_live), (SyncedItem, None), (Document, None)):
        for digest in _hashes(session, model, where):
            names.discard(digest)
        if not names:
            return []
    old: list[str] = []
    for digest in sorted(names):
        with contextlib.suppress(OSError):
            if store.path_of(digest).stat().st_mtime <= now - min_age:
                old.append(digest)
    return old


def _hashes(
    session: Session, model: type[RawItem | SyncedItem | Document], where: ColumnElement[bool] | None
) -> Iterator[str]:
    """The ``sha256`` of every row of ``model`` (matching ``where``), read by pages of its primary key: memory
    stays bounded, and no server-side cursor is needed."""
    after = 0
    while True:
        stmt = select(model.id, model.sha256).where(model.id > after, model.sha256.is_not(None))
        if where is not None:
            stmt = stmt.where(where)
        rows = session.execute(stmt.order_by(model.id).limit(_PAGE)).all()
        if not rows:
            return
        yield from (sha for _id, sha in rows if sha)
        after = rows[-1][0]


def _held_packs(paths: _Paths) -> set[str]:
    """Packs with a manifest not settled yet: left alone until it is."""
    return {str(m["pack"]) for path in paths.manifests() if (m := _read_json(path)) and "pack" in m}


# -------------------------------------------------------------------------------------------- compaction


class _Revived(Exception):
    """A blob about to be dropped is referenced again: the pack is left as it is."""


def compact(
    store: BlobStore,
    sessions: sessionmaker[Session],
    *,
    released_states: Collection[str] = (),
    loose: Iterable[str] = (),
    min_age: float = DEFAULT_MIN_AGE,
    rewrite_below: float = REWRITE_BELOW,
    on_progress: Callable[[int, int], None] | None = None,
) -> CompactReport:
    """Plan, compact each chosen pack (``on_progress(done, total)``), hold the loose files, then settle what has
    been held for ``min_age``. See the module docstring."""
    with exclusive(store):
        _settle(store, sessions, released_states, min_age, CompactReport(), settle_held=False)  # crashes first
        report = CompactReport()
        with sessions() as session:
            chosen = plan(
                store,
                session,
                released_states=released_states,
                loose=loose,
                min_age=min_age,
                rewrite_below=rewrite_below,
            )
        report.young, report.missing = chosen.young, chosen.missing
        paths = _Paths(store)
        for done, (pack, action) in enumerate(chosen.packs, start=1):
            _compact_pack(paths, sessions, pack, action, released_states, report)
            if on_progress is not None:
                on_progress(done, len(chosen.packs))
        _hold_loose(store, paths, sessions, chosen.loose, released_states, report)
        _settle(store, sessions, released_states, min_age, report)
        return report


def _compact_pack(
    paths: _Paths,
    sessions: sessionmaker[Session],
    pack: PackState,
    action: str,
    released_states: Collection[str],
    report: CompactReport,
) -> None:
    source = paths.pack(pack.name)
    new_name: str | None = None
    offsets: dict[str, int] = {}
    if action == REWRITE and pack.live:
        try:
            new_name, offsets = _copy_live(paths, source, pack.live)
        except _Damaged:
            report.damaged += 1
            return
    manifest = paths.held / f"{pack.name}.json"
    dropped = [[e.sha256, e.offset, e.length] for e in pack.dead]
    moved = [e.sha256 for e in pack.live] if action != DROP else []
    content: dict[str, Any] = {
        "pack": pack.name,
        "action": action,
        "new_pack": new_name,
        "dropped": dropped,
        "moved": moved,
        "released": pack.size - (pack.live_bytes if new_name is not None else 0),  # bytes its deletion gives back
        "held_at": None,
    }
    _write_json(manifest, content)
    try:
        with transaction(sessions) as session:
            _move_rows(session, pack, new_name, offsets, released_states)
    except _Revived:
        if new_name is not None:
            paths.pack(new_name).unlink(missing_ok=True)  # named by no row: the transaction rolled back
        manifest.unlink(missing_ok=True)
        report.changed += 1
        return
    now = time.time()
    if action != DROP:
        os.utime(source, (now, now))  # held: ``blobs orphans`` leaves it alone for its minimum age
    _write_json(manifest, {**content, "held_at": now})
    report.count(pack, action, pack.live_bytes if new_name is not None else 0)


def _move_rows(
    session: Session, pack: PackState, new_name: str | None, offsets: dict[str, int], released_states: Collection[str]
) -> None:
    """The one transaction of a pack's compaction. It writes first (SQLite then holds its write lock from the
    start, so the check below sees the latest data), then checks that no dropped blob is referenced now."""
    dialect = session.get_bind().dialect.name
    if new_name is not None:
        rows = [{"b_sha": sha, "b_offset": offset} for sha, offset in offsets.items()]
        session.execute(
            update(_PACKED)
            .where(_PACKED.c.sha256 == bindparam("b_sha"), _PACKED.c.pack == pack.name)
            .values(pack=new_name, offset=bindparam("b_offset")),
            rows,
        )
    dead = [entry.sha256 for entry in pack.dead]
    for start in range(0, len(dead), _CHUNK):
        chunk = dead[start : start + _CHUNK]
        session.execute(delete(_PACKED).where(_PACKED.c.pack == pack.name, one_of(_PACKED.c.sha256, chunk, dialect)))
    if referenced(session, dead, released_states):
        raise _Revived
    if new_name is not None:
        count = session.scalar(select(func.count()).select_from(_PACKED).where(_PACKED.c.pack == new_name))
        if count != len(offsets):  # a row changed under us (it cannot, with the lock): leave the pack as it was
            raise _Revived


def _hold_loose(
    store: BlobStore,
    paths: _Paths,
    sessions: sessionmaker[Session],
    loose: tuple[tuple[str, int], ...],
    released_states: Collection[str],
    report: CompactReport,
) -> None:
    """Move unreferenced loose files into ``blobs/compaction/``: from then on no sync finds them stored."""
    for start in range(0, len(loose), _CHUNK):
        chunk = loose[start : start + _CHUNK]
        with sessions() as session:
            live = referenced(session, (sha for sha, _size in chunk), released_states)
        for sha, size in chunk:
            if sha in live:
                continue
            manifest = paths.held / f"{sha}.json"
            _write_json(manifest, {"loose": sha, "size": size, "held_at": None})
            try:
                os.replace(store.path_of(sha), paths.held / sha)
            except FileNotFoundError:
                manifest.unlink(missing_ok=True)
                continue
            _write_json(manifest, {"loose": sha, "size": size, "held_at": time.time()})
            report.loose_held += 1
            report.released += size


# ---------------------------------------------------------------------------------------------- settling


def settle(
    store: BlobStore,
    sessions: sessionmaker[Session],
    *,
    released_states: Collection[str] = (),
    min_age: float = DEFAULT_MIN_AGE,
) -> CompactReport:
    """Only the last step of ``compact``: delete what has been held for ``min_age``."""
    with exclusive(store):
        report = CompactReport()
        _settle(store, sessions, released_states, min_age, report)
        return report


def _settle(
    store: BlobStore,
    sessions: sessionmaker[Session],
    released_states: Collection[str],
    min_age: float,
    report: CompactReport,
    *,
    settle_held: bool = True,
) -> None:
    """Finish what a crash interrupted (a manifest without a hold time), and with ``settle_held`` delete the files
    held for ``min_age`` — after copying back into the store any dropped blob that is referenced by now."""
    paths = _Paths(store)
    for path in paths.manifests():
        manifest = _read_json(path)
        if manifest is None:
            continue  # not one this module wrote whole (it writes them atomically): left for a person to look at
        with sessions() as session:
            settling = _Settling(store, paths, session, released_states, min_age, report, settle_held)
            if "pack" in manifest:
                _settle_pack(settling, path, manifest)
            elif "loose" in manifest:
                _settle_loose(settling, path, manifest)


@dataclass(frozen=True, slots=True)
class _Settling:
    """What settling a manifest (``_settle_pack``, ``_settle_loose``) works with, besides the manifest."""

    store: BlobStore
    paths: _Paths
    session: Session
    released_states: Collection[str]
    min_age: float
    report: CompactReport  # counts what is freed, held, restored
    settle_held: bool  # False: only finish what a crash interrupted


def _settle_pack(settling: _Settling, path: Path, manifest: dict[str, Any]) -> None:
    store, paths, session, report = settling.store, settling.paths, settling.session, settling.report
    released_states, min_age, settle_held = settling.released_states, settling.min_age, settling.settle_held
    name, new_name = str(manifest["pack"]), manifest.get("new_pack")
    source = paths.pack(name)
    action = manifest.get("action")
    dropped = [(str(sha), int(offset), int(length)) for sha, offset, length in manifest.get("dropped", [])]
    named = {sha for sha, _o, _l in dropped} | set(manifest.get("moved", []))
    still = session.scalar(select(func.count()).select_from(_PACKED).where(_PACKED.c.pack == name))
    if manifest.get("held_at") is None:
        rows = session.scalars(select(_PACKED.c.sha256).where(_PACKED.c.pack == name)).all()
        if named & set(rows):  # its transaction never committed: nothing changed but the new pack, named by no row
            if new_name:
                paths.pack(str(new_name)).unlink(missing_ok=True)
            path.unlink(missing_ok=True)
            return
        now = time.time()  # committed, then the process died: held from now on
        if action != DROP and source.exists():
            os.utime(source, (now, now))
        _write_json(path, {**manifest, "held_at": now})
        manifest = {**manifest, "held_at": now}
    size = int(manifest.get("released", 0)) if action != DROP and source.exists() else 0
    if not settle_held or time.time() - float(manifest["held_at"]) < min_age:
        report.held += size
        return
    if dropped and source.exists():
        wanted = referenced(session, (sha for sha, _o, _l in dropped), released_states)
        lost = wanted - store.stored(wanted)
        if lost:
            with open(source, "rb") as handle:
                for sha, offset, length in dropped:
                    if sha in lost:
                        data = os.pread(handle.fileno(), length, offset)
                        if sha256_hex(data) == sha:
                            store.put(data)
                            report.restored += 1
    if action != DROP and source.exists() and not still:  # no row names it (it cannot, but never delete one)
        source.unlink()
        report.freed += size
    path.unlink(missing_ok=True)


def _settle_loose(settling: _Settling, path: Path, manifest: dict[str, Any]) -> None:
    store, paths, session, report = settling.store, settling.paths, settling.session, settling.report
    released_states, min_age, settle_held = settling.released_states, settling.min_age, settling.settle_held
    sha = str(manifest["loose"])
    held = paths.held / sha
    if manifest.get("held_at") is None:
        if not held.exists():  # not moved: nothing changed
            path.unlink(missing_ok=True)
            return
        manifest = {**manifest, "held_at": time.time()}
        _write_json(path, manifest)
    if not held.exists():
        path.unlink(missing_ok=True)
        return
    size = held.stat().st_size
    if not settle_held or time.time() - float(manifest["held_at"]) < min_age:
        report.held += size
        return
    if referenced(session, [sha], released_states) and not store.stored([sha]):
        data = held.read_bytes()
        if sha256_hex(data) == sha:
            store.put(data)
            report.restored += 1
    held.unlink()
    report.freed += size
    path.unlink(missing_ok=True)

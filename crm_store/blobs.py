"""Content-addressed file storage under ``CRM_DATA_DIR``: a file is stored once, under its sha256.

Names taken from messages are never used on disk (SPEC §6). Writes go to a temporary file and are renamed
into place, so a crash never leaves a half-written blob under a valid hash.

Layout: ``blobs/<first two hex digits>/<sha256>`` — 256 fan-out directories, as git does, so a sync makes
at most 256 directories (a million blobs are about 4,000 files per directory, which ext4 and xfs index).
Stores written before 2026-11 used two levels (``blobs/aa/bb/<sha256>``); those files are still found and
never stored a second time. A sync stores thousands of blobs, so ``put`` works on plain string paths and
remembers which fan-out directories it has already made (one ``mkdir`` per directory per process).

Packs: creating a file costs far more than writing its bytes (0.06–0.3 ms per file on the development VM,
against 0.16 s for 220 MB written as 40 files), so the sync stage writes the messages of a fetched page as
one pack file, ``blobs/packs/<name>.pack``, and records each blob's pack, offset and length in the
``packed_blobs`` table in the same transaction as the raw items that refer to them (``pack_writer``, then
``record_packed``); a processing batch packs its attachments the same way. A crash before that commit leaves
an unreferenced pack file (``unreferenced_packs``, ``crm-sync blobs orphans``), never a reference to missing
bytes. Reads check the loose file first, then the index; a packed blob is checked against its hash when
read. ``put`` (loose files, used where no batch is open, e.g. a batch redone item by item) does not ask the
index, so a blob can then exist both packed and as a file: space, not correctness. Stores without a
database (``engine=None``) keep loose files only.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, cast

from sqlalchemy import Engine, Insert, Table, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from crm_store.db import one_of
from crm_store.models import PackedBlob

_HEX64 = re.compile(r"[0-9a-f]{64}")
_FAN_OUT = re.compile(r"[0-9a-f]{2}")
_tmp_names = itertools.count()
_MADE_LIMIT = 4096


_CHUNK = 500  # digests per IN (...) list
COMPACTION_DIR = "compaction"  # under blobs/: what a compaction holds, and its manifests (``crm_store.compact``)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Located(NamedTuple):
    """Where a stored blob's bytes are: a slice of a pack file, or a whole file (``length`` -1). Plain data,
    so that another process (a parser process) can read the bytes without the database."""

    path: str
    offset: int = 0
    length: int = -1


def read_located(blobs: Mapping[str, Located]) -> dict[str, bytes]:
    """The bytes of each located blob that is there and matches its hash (a damaged or vanished one is left
    out: "missing", never wrong bytes); each file is opened once."""
    found: dict[str, bytes] = {}
    by_path: dict[str, list[tuple[str, Located]]] = {}
    for digest, where in blobs.items():
        by_path.setdefault(where.path, []).append((digest, where))
    for path, located in by_path.items():
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            for digest, where in located:
                data = os.pread(fd, where.length, where.offset) if where.length >= 0 else _read_all(fd)
                if sha256_hex(data) == digest:
                    found[digest] = data
        finally:
            os.close(fd)
    return found


def _digests(digests: Iterable[str]) -> list[str]:
    """``digests`` once each, in order; a string that is not a sha256 hex digest is a ``ValueError``."""
    wanted = list(dict.fromkeys(digests))
    for digest in wanted:
        if not _HEX64.fullmatch(digest):
            raise ValueError(f"not a sha256 hex digest: {digest!r}")
    return wanted


def _scan(path: str) -> list[os.DirEntry[str]]:
    """The entries of a directory (none when it is gone)."""
    try:
        with os.scandir(path) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _read_all(fd: int) -> bytes:
    with open(fd, "rb", closefd=False) as handle:
        return handle.read()


_PACKED = cast(Table, PackedBlob.__table__)  # Core inserts: plain rows, no per-row ORM bookkeeping


class BlobMissing(OSError):
    """The blob is neither a file nor in a pack, or its packed bytes do not match its hash."""


@dataclass(frozen=True, slots=True)
class PackedEntry:
    sha256: str
    pack: str
    offset: int
    length: int


class BlobStore:
    def __init__(self, root: Path, engine: Engine | None = None) -> None:
        self.root = root
        self._base = os.path.join(os.fspath(root), "blobs")
        self._packs = os.path.join(self._base, "packs")
        self._made: set[str] = set()  # fan-out directories known to exist
        # Packs need the index in the database, read on a connection of its own (an in-memory SQLite
        # database is private to its connection: loose files only there).
        self._engine = engine if engine is not None and engine.url.database not in (None, "", ":memory:") else None

    @property
    def packs(self) -> bool:
        """True when ``pack_writer`` may be used."""
        return self._engine is not None

    def path_of(self, sha256: str) -> Path:
        """Where the blob is (or would be stored)."""
        if not _HEX64.fullmatch(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        target = self._location(sha256)[1]
        if not os.path.exists(target):
            legacy = self._legacy(sha256)
            if os.path.exists(legacy):
                return Path(legacy)
        return Path(target)

    def _location(self, sha256: str) -> tuple[str, str]:
        directory = os.path.join(self._base, sha256[:2])
        return directory, os.path.join(directory, sha256)

    def _legacy(self, sha256: str) -> str:
        return os.path.join(self._base, sha256[:2], sha256[2:4], sha256)

    def _has_file(self, sha256: str) -> bool:
        """Stored as a file, in the current layout or the older one."""
        return os.path.exists(self._location(sha256)[1]) or os.path.exists(self._legacy(sha256))

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent) and return its sha256."""
        digest = sha256_hex(data)
        directory, target = self._location(digest)
        if self._has_file(digest):
            return digest
        if directory not in self._made:
            os.makedirs(directory, exist_ok=True)
            if len(self._made) >= _MADE_LIMIT:  # bounded: a sync's memory must not grow with the mailbox
                self._made.clear()
            self._made.add(directory)
        # Unique per process and call; O_EXCL refuses a name another process happens to hold.
        tmp = os.path.join(directory, f".tmp-{os.getpid()}-{next(_tmp_names)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:  # the directory was removed behind our back: make it again
            self._made.discard(directory)
            os.makedirs(directory, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return digest

    def get(self, sha256: str) -> bytes:
        """The blob's bytes; ``BlobMissing`` (an ``OSError``) when it is not stored."""
        if not _HEX64.fullmatch(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        found = self._loose(sha256)
        if found is None:
            found = self._from_packs([sha256]).get(sha256)
        if found is None:
            raise BlobMissing(f"blob {sha256} is not stored")
        return found

    def get_many(self, digests: Iterable[str]) -> dict[str, bytes]:
        """The stored ones of ``digests`` (one index query for the packed ones); missing ones are left out.
        Packs are looked at first: most stored messages are packed, and a failed open per blob costs more."""
        wanted = _digests(digests)
        found = self._from_packs(wanted)
        for digest in wanted:
            if digest not in found and (data := self._loose(digest)) is not None:
                found[digest] = data
        return found

    def locate_many(self, digests: Iterable[str]) -> dict[str, Located]:
        """Where the stored ones of ``digests`` are (one index query for the packed ones), for ``read_located``
        — in this process or another; missing ones are left out. The bytes are checked when read."""
        wanted = _digests(digests)
        located = self._packed(wanted)
        for digest in wanted:
            if digest not in located:
                for path in (self._location(digest)[1], self._legacy(digest)):
                    if os.path.exists(path):
                        located[digest] = Located(path)
                        break
        return located

    def exists(self, sha256: str) -> bool:
        if not _HEX64.fullmatch(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self._has_file(sha256) or bool(self._index([sha256]))

    def _loose(self, sha256: str) -> bytes | None:
        for path in (self._location(sha256)[1], self._legacy(sha256)):
            try:
                with open(path, "rb") as handle:
                    return handle.read()
            except FileNotFoundError:
                continue
        return None

    # ------------------------------------------------------------------------------------------ packs

    def pack_writer(self) -> PackWriter:
        """A writer that stores blobs into one new pack file (see ``PackWriter``)."""
        if not self.packs:
            raise RuntimeError("this blob store has no database index: packs are not available")
        return PackWriter(self)

    def _open_pack(self) -> tuple[str, str]:
        """A new pack's final name and the temporary path it is written under."""
        if self._packs not in self._made:
            os.makedirs(self._packs, exist_ok=True)
            self._made.add(self._packs)
        name = f"{uuid.uuid4().hex}.pack"
        return name, os.path.join(self._packs, f".tmp-{name}")

    def _finish_pack(self, name: str, tmp: str) -> None:
        os.replace(tmp, os.path.join(self._packs, name))

    @staticmethod
    def record_packed(session: Session, entries: Sequence[PackedEntry]) -> None:
        """Index packed blobs; a blob indexed already (stored by another sync) keeps its first entry."""
        if not entries:
            return
        rows = [{"sha256": e.sha256, "pack": e.pack, "offset": e.offset, "length": e.length} for e in entries]
        dialect = session.get_bind().dialect.name
        statement: Insert
        if dialect == "postgresql":
            statement = postgresql.insert(_PACKED).on_conflict_do_nothing(index_elements=["sha256"])
        elif dialect == "sqlite":
            statement = sqlite.insert(_PACKED).on_conflict_do_nothing(index_elements=["sha256"])
        else:
            statement = insert(_PACKED)
        session.execute(statement, rows)

    def stored(self, digests: Iterable[str]) -> set[str]:
        """Which of ``digests`` are stored already: as files, or indexed (committed) in a pack."""
        wanted = list(dict.fromkeys(digests))
        known = {d for d in wanted if self._has_file(d)}
        known.update(self._index([d for d in wanted if d not in known]))
        return known

    def unreferenced_packs(self, min_age_seconds: float = 3600.0) -> list[tuple[Path, int]]:
        """Pack files no ``packed_blobs`` row names, and temporary pack files left by a killed process, older
        than ``min_age_seconds`` (a pack is renamed into place just before its page's transaction commits):
        what a sync killed at the wrong moment leaves behind. Their bytes are stored nowhere else that any row
        refers to, so deleting them loses nothing. A pack a purge released and still holds (``held_packs``) is
        never one of them, whatever ``min_age_seconds``: the purge deletes it once held for its own minimum
        age, after storing again any of its blobs referenced meanwhile (``crm_store.compact``)."""
        if self._engine is None or not os.path.isdir(self._packs):
            return []
        with self._engine.connect() as connection:
            named = set(connection.scalars(select(PackedBlob.pack).distinct()))
        # Read after the index: a compaction writes a pack's manifest before the transaction that deletes the
        # pack's rows, and deletes the pack before its manifest, so a rowless held pack is always seen held.
        named |= self.held_packs()
        cutoff = time.time() - min_age_seconds
        found: list[tuple[Path, int]] = []
        with os.scandir(self._packs) as entries:
            for entry in entries:
                if entry.name in named or not entry.is_file(follow_symlinks=False):
                    continue
                if not (entry.name.endswith(".pack") or entry.name.startswith(".tmp-")):
                    continue  # not a file this store writes
                st = entry.stat(follow_symlinks=False)
                if st.st_mtime < cutoff:
                    found.append((Path(entry.path), st.st_size))
        return sorted(found)

    def loose_digests(self) -> Iterator[str]:
        """The blobs stored as files (``blobs/<aa>/<sha256>``, and ``blobs/<aa>/<bb>/<sha256>`` of older stores),
        read from the directories (no ``stat``); a blob stored in both layouts comes twice."""
        for top in _scan(self._base):
            if not (_FAN_OUT.fullmatch(top.name) and top.is_dir(follow_symlinks=False)):
                continue  # packs/, compaction/, anything this store does not write
            for entry in _scan(top.path):
                if _HEX64.fullmatch(entry.name):
                    if entry.name.startswith(top.name) and entry.is_file(follow_symlinks=False):
                        yield entry.name
                elif _FAN_OUT.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):  # the older layout
                    prefix = top.name + entry.name
                    for old in _scan(entry.path):
                        if _HEX64.fullmatch(old.name) and old.name.startswith(prefix):
                            yield old.name

    def held_packs(self) -> set[str]:
        """The pack files a compaction (``crm-sync purge``) has a manifest for under ``blobs/compaction/``: released
        and held until the purge settles them, or being compacted. Named by the manifest and by its file name
        (``<pack>.json``), so that a manifest that cannot be read still keeps its pack."""
        held: set[str] = set()
        try:
            with os.scandir(os.path.join(self._base, COMPACTION_DIR)) as entries:
                manifests = [e.path for e in entries if e.name.endswith(".json") and not e.name.startswith(".")]
        except FileNotFoundError:
            return held
        for path in manifests:
            name = os.path.basename(path)[: -len(".json")]
            if name.endswith(".pack"):
                held.add(name)
            with contextlib.suppress(OSError, ValueError):
                with open(path, encoding="utf-8") as handle:
                    manifest = json.load(handle)
                if isinstance(manifest, dict) and isinstance(manifest.get("pack"), str):
                    held.add(manifest["pack"])
        return held

    def _index(self, digests: list[str]) -> dict[str, PackedEntry]:
        if self._engine is None or not digests:
            return {}
        entries: dict[str, PackedEntry] = {}
        with self._engine.connect() as connection:
            for start in range(0, len(digests), _CHUNK):
                rows = connection.execute(
                    select(PackedBlob.sha256, PackedBlob.pack, PackedBlob.offset, PackedBlob.length).where(
                        one_of(PackedBlob.sha256, digests[start : start + _CHUNK], connection.dialect.name)
                    )
                )
                entries.update((row.sha256, PackedEntry(*row)) for row in rows)
        return entries

    def _from_packs(self, digests: list[str]) -> dict[str, bytes]:
        return read_located(self._packed(digests))

    def _packed(self, digests: list[str]) -> dict[str, Located]:
        located: dict[str, Located] = {}
        for entry in self._index(digests).values():
            if "/" in entry.pack or entry.pack.startswith("."):
                continue  # not a name this store writes
            located[entry.sha256] = Located(os.path.join(self._packs, entry.pack), entry.offset, entry.length)
        return located


class PackWriter:
    """Stores the blobs of one fetched page in one pack file: ``add`` each, ``close`` (the file is renamed into
    place and the entries to record are returned) or ``discard``. Blobs are held back until ``budget`` bytes
    wait, so a flush asks the index once which of them are stored already (a message in several folders or
    mailboxes, a full resync) and writes only the others; a blob larger than the budget becomes a file of its
    own. Memory stays bounded whatever the page holds."""

    def __init__(self, store: BlobStore, budget: int = 16 * 1024 * 1024) -> None:
        self._store = store
        self._budget = budget
        self._waiting: dict[str, bytes] = {}
        self._waiting_bytes = 0
        self._handled: set[str] = set()
        self._entries: list[PackedEntry] = []
        self._file: tuple[str, str, int] | None = None  # name, temporary path, file descriptor
        self._offset = 0

    def add(self, data: bytes) -> str:
        digest = sha256_hex(data)
        if digest in self._handled or digest in self._waiting:
            return digest
        if len(data) > self._budget:
            self._store.put(data)
            self._handled.add(digest)
            return digest
        self._waiting[digest] = data
        self._waiting_bytes += len(data)
        if self._waiting_bytes >= self._budget:
            self._flush()
        return digest

    def _flush(self) -> None:
        known = self._store.stored(self._waiting)
        for digest, data in self._waiting.items():
            self._handled.add(digest)
            if digest in known:
                continue
            if self._file is None:
                name, tmp = self._store._open_pack()
                self._file = (name, tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            view = memoryview(data)
            while view:
                view = view[os.write(self._file[2], view) :]
            self._entries.append(PackedEntry(digest, self._file[0], self._offset, len(data)))
            self._offset += len(data)
        self._waiting.clear()
        self._waiting_bytes = 0

    def close(self) -> list[PackedEntry]:
        """Finish the pack: its file is in place once this returns; record the entries it returns."""
        try:
            self._flush()
        except BaseException:
            self.discard()
            raise
        if self._file is not None:
            name, tmp, fd = self._file
            self._file = None
            os.close(fd)
            self._store._finish_pack(name, tmp)
        return self._entries

    def discard(self) -> None:
        """Give up the pack (the page failed): nothing of it stays on disk."""
        if self._file is not None:
            _name, tmp, fd = self._file
            self._file = None
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._entries = []

    def __enter__(self) -> PackWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is not None:
            self.discard()

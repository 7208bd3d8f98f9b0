"""``maildir:///path`` — a Maildir with its Maildir++ subfolders, read strictly read-only.

Folders: ``"."`` (the root) then each Maildir++ subfolder ``.Sent``, ``.Archive.2023`` … as ``"Sent"``,
``"Archive.2023"`` (sorted; names are kept as stored on disk). A folder's messages are the files in ``new/``
and ``cur/``; ``tmp/`` holds deliveries in progress and is ignored, as are hidden files.

External id = the Maildir unique key (the file name before ``:2,`` / ``!2,``), so a flag change (rename) or
a ``new/`` → ``cur/`` move is not a change; version = the file size (Maildir messages are immutable). As they
are immutable, a listing stats only the files its cursor does not know yet: a re-sync of a large Maildir
reads the directories, not every file's inode.
``new/`` is read before ``cur/`` so a message moving between them during a scan is seen at least once, and
a snapshot id that seems gone is confirmed by a second scan before it is reported deleted (a rename
racing with the directory read can hide a file once).

The root may also hold calendar and contact files next to the mail: ``*.ics`` → kind ``calendar``, id
``ics:<name>``; ``*.vcf`` → kind ``contacts``, id ``vcf:<name>``; version ``mtime_ns:size``.
Nothing is ever written: no flags, no moves, no ``seen`` marks.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from sync_service.connectors.base import ChangePage, ItemKind, ItemRef, RawItem
from sync_service.connectors.localpath import (
    FileEntry,
    entry_stat,
    is_hidden,
    kind_for,
    read_bytes,
    require_path,
    source_errors,
    stat_entry,
    url_to_path,
)
from sync_service.connectors.snapshot import ROOT_FOLDER, decode_cursor, entries_page
from sync_service.errors import PermanentSourceError

_INFO = re.compile(r"[:!][12],")
_LOOSE_PREFIX: dict[ItemKind, str] = {"calendar": "ics", "contacts": "vcf"}


def unique_key(file_name: str) -> str:
    """The Maildir unique key of a message file name (without the ``:2,FLAGS`` info part)."""
    return _INFO.split(file_name, maxsplit=1)[0]


class MaildirConnector:
    def __init__(self, url: str, secret: str | None = None) -> None:
        self.root = require_path(url_to_path(url), "dir")
        self._located: dict[str, dict[str, str]] = {}
        # The listing of a pass that has more pages, kept with the cursor of its next page: listing a folder
        # scans and stats every file, so doing it once per pass instead of once per page keeps a large
        # initial sync linear. Files that arrive meanwhile are listed by the next pass.
        self._listing: dict[str, tuple[str, dict[str, FileEntry]]] = {}

    def folders(self) -> Sequence[str]:
        require_path(self.root, "dir")
        with source_errors(self.root), os.scandir(self.root) as entries:
            names = sorted(e.name[1:] for e in entries if _is_subfolder(e))
        return [ROOT_FOLDER, *names]

    def list_changes(self, folder: str, cursor: str | None, limit: int = 500) -> ChangePage:
        previous = decode_cursor(cursor)
        listed = self._listing.pop(folder, None)
        if listed is not None and listed[0] == cursor:  # the next page of the same pass
            entries = listed[1]
        else:
            entries = self._scan(folder, previous)
            if any(k not in entries for k in previous):
                entries = {**entries, **self._scan(folder, previous)}
            self._located[folder] = {k: e.path for k, e in entries.items()}
        page = entries_page(entries, previous, limit)
        if page.more:
            self._listing[folder] = (page.next_cursor, entries)
        return page

    def fetch(self, folder: str, refs: Sequence[ItemRef]) -> Iterator[RawItem]:
        located = self._located.get(folder, {})
        rescanned = False
        for ref in refs:
            data = _read(located.get(ref.external_id))
            if data is None and not rescanned:  # moved (flags, new→cur) or never listed here: look again
                located = self._located[folder] = {k: e.path for k, e in self._scan(folder).items()}
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

    def _scan(self, folder: str, known: Mapping[str, str] | None = None) -> dict[str, FileEntry]:
        """The folder's files; a message in ``known`` (a snapshot) keeps its version there, unstat'ed."""
        directory = self._folder_dir(folder)
        found: dict[str, FileEntry] = {}
        with source_errors(directory):
            for sub in ("new", "cur"):
                found.update(_scan_messages(directory / sub, known or {}))
            if folder == ROOT_FOLDER:
                found.update(_scan_loose_files(directory))
        return found


def _is_subfolder(entry: os.DirEntry[str]) -> bool:
    return (entry.name.startswith(".") and entry.name not in (".", "..") and entry.is_dir()
            and os.path.isdir(os.path.join(entry.path, "cur")))


def _scan_messages(directory: Path, known: Mapping[str, str]) -> dict[str, FileEntry]:
    if not directory.is_dir():
        return {}
    found: dict[str, FileEntry] = {}
    split = _INFO.split
    with os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            key = split(name, maxsplit=1)[0] if "," in name else name  # unique_key, inlined: 20,000 calls
            version = known.get(key)
            if version is not None and not is_hidden(name):
                # Known and immutable: keep its version. is_file() reads the directory entry's type, no stat;
                # its time is never needed, as only new files are ordered into pages.
                with contextlib.suppress(OSError):
                    if entry.is_file():
                        found[key] = FileEntry(entry.path, "message", version, 0)
                continue
            st = entry_stat(entry)
            if st is not None:
                found[key] = stat_entry(entry.path, "message", st, str(st.st_size))
    return found


def _scan_loose_files(directory: Path) -> dict[str, FileEntry]:
    found: dict[str, FileEntry] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            kind = kind_for(entry.name)
            prefix = _LOOSE_PREFIX.get(kind) if kind is not None else None
            st = entry_stat(entry) if prefix is not None else None
            if kind is not None and st is not None:
                found[f"{prefix}:{entry.name}"] = stat_entry(entry.path, kind, st)
    return found


def _read(path: str | None) -> bytes | None:
    return read_bytes(path) if path is not None else None

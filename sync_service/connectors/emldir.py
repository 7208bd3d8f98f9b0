"""``eml:///path/dir`` — a directory tree of ``.eml`` files (one RFC 5322 message each).

One folder, ``"."``. The tree is walked recursively (hidden files and directories skipped, symlinked
directories not followed). External id = the path relative to the root, POSIX style (bytes that are not
UTF-8 as ``\\xNN`` escapes); version =
``mtime_ns:size``. ``.ics`` and ``.vcf`` files in the tree are listed too, as ``calendar`` / ``contacts``
items, so one exported folder can carry mail and calendar together. Read-only.
"""

from __future__ import annotations

import os
import stat
from typing import ClassVar

from sync_service.connectors.localpath import (
    FileEntry,
    PathType,
    is_hidden,
    kind_for,
    source_errors,
    stat_entry,
)
from sync_service.connectors.snapshot import FileSourceConnector


class EmlDirConnector(FileSourceConnector):
    path_type: ClassVar[PathType] = "dir"

    def scan(self) -> dict[str, FileEntry]:
        found: dict[str, FileEntry] = {}
        with source_errors(self.root):
            for dirpath, dirnames, filenames in os.walk(self.root, onerror=_walk_error):
                dirnames[:] = [d for d in dirnames if not is_hidden(d)]
                rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
                prefix = "" if rel == "." else rel + "/"
                for name in filenames:
                    entry = _file_entry(os.path.join(dirpath, name), name)
                    if entry is not None:
                        found[prefix + name] = entry
        return found


def _file_entry(path: str, name: str) -> FileEntry | None:
    kind = kind_for(name)
    if kind is None or is_hidden(name):
        return None
    try:
        st = os.stat(path)
    except FileNotFoundError:  # removed while walking, or a dangling symlink
        return None
    return stat_entry(path, kind, st) if stat.S_ISREG(st.st_mode) else None


def _walk_error(exc: OSError) -> None:
    if not isinstance(exc, FileNotFoundError):  # a subdirectory removed while walking is just gone
        raise exc

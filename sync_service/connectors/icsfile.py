"""``ics:///path/file.ics`` — one iCalendar file (or a directory of ``.ics`` files) as a calendar source.

One folder, ``"."``. Each file is one item of kind ``calendar``: external id = the file name, version =
``mtime_ns:size``; a changed file is upserted whole (the parser expands its events). Read-only.
"""

from __future__ import annotations

from typing import ClassVar

from sync_service.connectors.base import ItemKind
from sync_service.connectors.localpath import AnyPath, FileEntry, PathType, safe_join, suffix_files
from sync_service.connectors.snapshot import FileSourceConnector


class SingleKindFilesConnector(FileSourceConnector):
    """One file of ``kind`` (whatever its suffix), or the files of that kind directly inside a directory."""

    path_type: ClassVar[PathType] = "any"
    kind: ClassVar[ItemKind] = "calendar"

    def scan(self) -> dict[str, FileEntry]:
        return suffix_files(self.root, self.kind)

    def path_for(self, external_id: str) -> AnyPath | None:
        if self.root.is_file():
            return self.root if external_id == self.root.name else None
        return safe_join(self.root, external_id) if "/" not in external_id else None


class IcsFileConnector(SingleKindFilesConnector):
    kind: ClassVar[ItemKind] = "calendar"

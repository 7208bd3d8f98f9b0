"""``vcf:///path/file.vcf`` — one vCard file (or a directory of ``.vcf`` files) as a contacts source.

One folder, ``"."``. Each file is one item of kind ``contacts`` (a file may hold many cards): external id =
the file name, version = ``mtime_ns:size``. Read-only.
"""

from __future__ import annotations

from typing import ClassVar

from sync_service.connectors.base import ItemKind
from sync_service.connectors.icsfile import SingleKindFilesConnector


class VcfFileConnector(SingleKindFilesConnector):
    kind: ClassVar[ItemKind] = "contacts"

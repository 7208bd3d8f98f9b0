"""Content-addressed file storage under ``CRM_DATA_DIR``: a file is stored once, under its sha256.

Names taken from messages are never used on disk (SPEC §6). Writes go to a temporary file and are renamed
into place, so a crash never leaves a half-written blob under a valid hash.

A sync stores thousands of blobs, so ``put`` works on plain string paths and remembers which fan-out
directories it has already made (one ``mkdir`` per directory per process, not per blob).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
from pathlib import Path

_HEX64 = re.compile(r"[0-9a-f]{64}")
_tmp_names = itertools.count()
_MADE_LIMIT = 4096


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._base = os.path.join(os.fspath(root), "blobs")
        self._made: set[str] = set()  # fan-out directories known to exist

    def path_of(self, sha256: str) -> Path:
        if not _HEX64.fullmatch(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return Path(self._location(sha256)[1])

    def _location(self, sha256: str) -> tuple[str, str]:
        directory = os.path.join(self._base, sha256[:2], sha256[2:4])
        return directory, os.path.join(directory, sha256)

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent) and return its sha256."""
        digest = sha256_hex(data)
        directory, target = self._location(digest)
        if os.path.exists(target):
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
        return self.path_of(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).exists()

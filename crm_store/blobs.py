"""Content-addressed file storage under ``CRM_DATA_DIR``: a file is stored once, under its sha256.

Names taken from messages are never used on disk (SPEC §6). Writes go to a temporary file and are renamed
into place, so a crash never leaves a half-written blob under a valid hash.

Layout: ``blobs/<first two hex digits>/<sha256>`` — 256 fan-out directories, as git does, so a sync makes
at most 256 directories (a million blobs are about 4,000 files per directory, which ext4 and xfs index).
Stores written before 2026-11 used two levels (``blobs/aa/bb/<sha256>``); those files are still found and
never stored a second time. A sync stores thousands of blobs, so ``put`` works on plain string paths and
remembers which fan-out directories it has already made (one ``mkdir`` per directory per process).
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

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent) and return its sha256."""
        digest = sha256_hex(data)
        directory, target = self._location(digest)
        if os.path.exists(target) or os.path.exists(self._legacy(digest)):
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
        if not _HEX64.fullmatch(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        try:
            with open(self._location(sha256)[1], "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            with open(self._legacy(sha256), "rb") as handle:
                return handle.read()

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).exists()

"""``mbox:///path/file.mbox`` — one mbox file (folder ``"."``), streamed message by message, read-only.

Framing: a message starts at a ``From `` line at the start of the file or after an empty line and runs to
the next one; the ``From `` line and the empty line before the next are framing, not message bytes, and
``>From `` / ``>>From `` body lines are unquoted by one ``>`` (mboxrd). External id = the first 24 hex digits
of the SHA-256 of the message bytes plus ``#n`` for the n-th identical copy (from ``#0``); version ``""``.

Cursor: the snapshot plus, on its last page, the file's size, mtime and a hash of its first 64 KiB:

- size and mtime unchanged → an empty page, without reading the file;
- grown, same head hash, same hash of the last 4 KiB before the old end (catches a compaction that
  shrank then regrew the file), and the old end is a message boundary → only the appended tail is read
  (append-only mail spools);
- anything else → a full rescan, diffed against the snapshot (deletes for vanished messages).

One scan is kept in memory (keyed by size and mtime) with each message's byte span, so later pages of a
listing and ``fetch`` seek straight to messages instead of re-reading the file.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from sync_service.connectors.base import ChangePage, ItemKind, ItemRef, RawItem
from sync_service.connectors.localpath import require_path, source_errors, url_to_path
from sync_service.connectors.snapshot import ROOT_FOLDER, check_root_folder, decode_state, diff_page
from sync_service.errors import PermanentSourceError

HEAD_BYTES = 64 * 1024
END_BYTES = 4 * 1024
_BLANK = (b"\n", b"\r\n")
_QUOTED_FROM = re.compile(rb">+From ")


@dataclass
class _Scan:
    """What one pass over the file found: id → position (file order) and id → byte span."""

    stat_key: tuple[int, int]
    order: dict[str, int] = field(default_factory=dict)
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)


def iter_messages(fh: BinaryIO, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, bytes]]:
    """``(start, end, message bytes)`` of each message from offset ``start`` (a message boundary) on.

    With ``end``, lines starting at or after it are not read (bytes appended after the file was stat'ed).
    """
    fh.seek(start)
    pos, msg_start, prev_blank = start, -1, True
    lines: list[bytes] = []
    for line in fh:
        if end is not None and pos >= end:
            break
        if prev_blank and line.startswith(b"From "):
            if msg_start >= 0:
                yield msg_start, pos, _message_bytes(lines)
            msg_start, lines = pos, []
        elif msg_start >= 0:
            lines.append(line)
        prev_blank = line in _BLANK
        pos += len(line)
    if msg_start >= 0:
        yield msg_start, pos, _message_bytes(lines)


def _message_bytes(lines: list[bytes]) -> bytes:
    if lines and lines[-1] in _BLANK:
        lines.pop()
    return b"".join(line[1:] if line[:1] == b">" and _QUOTED_FROM.match(line) else line for line in lines)


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:24]


def _range_hash(fh: BinaryIO, start: int, length: int) -> str:
    fh.seek(start)
    return hashlib.sha256(fh.read(length)).hexdigest()[:32]


def _file_meta(fh: BinaryIO, size: int, mtime_ns: int) -> dict[str, Any]:
    """What a complete cursor remembers of the file: size, mtime, hashes of its head and of its end."""
    head_len, end_len = min(size, HEAD_BYTES), min(size, END_BYTES)
    return {"size": size, "mtime_ns": mtime_ns, "head_len": head_len, "head": _range_hash(fh, 0, head_len),
            "end_len": end_len, "end": _range_hash(fh, size - end_len, end_len)}


class _IdCounter:
    """Numbers identical copies ``#0``, ``#1`` … continuing after the copies already in ``known``."""

    def __init__(self, known: Mapping[str, str] | None = None) -> None:
        self._known = known or {}
        self._next: dict[str, int] = {}

    def next_id(self, data: bytes) -> str:
        digest = content_hash(data)
        n = self._next.get(digest, 0)
        while f"{digest}#{n}" in self._known:
            n += 1
        self._next[digest] = n + 1
        return f"{digest}#{n}"


class MboxConnector:
    def __init__(self, url: str, secret: str | None = None) -> None:
        self.path = require_path(url_to_path(url), "file")
        self._scan: _Scan | None = None

    def folders(self) -> Sequence[str]:
        return [ROOT_FOLDER]

    def list_changes(self, folder: str, cursor: str | None, limit: int = 500) -> ChangePage:
        check_root_folder(folder)
        snapshot, meta = decode_state(cursor)
        require_path(self.path, "file")
        with source_errors(self.path):
            st = self.path.stat()
            if cursor and meta.get("size") == st.st_size and meta.get("mtime_ns") == st.st_mtime_ns:
                return ChangePage((), (), cursor)
            with self.path.open("rb") as fh:
                scan = self._scan_for((st.st_size, st.st_mtime_ns), fh, snapshot, meta)
                new_meta = _file_meta(fh, st.st_size, st.st_mtime_ns)
        current: dict[str, tuple[str, ItemKind]] = {k: ("", "message") for k in scan.order}
        return diff_page(current, snapshot, limit, sort_key=scan.order.__getitem__, meta=new_meta)

    def fetch(self, folder: str, refs: Sequence[ItemRef]) -> Iterator[RawItem]:
        check_root_folder(folder)
        wanted = {ref.external_id: ref for ref in refs}
        with source_errors(self.path), self.path.open("rb") as fh:
            st = self.path.stat()
            scan = self._scan if self._scan and self._scan.stat_key == (st.st_size, st.st_mtime_ns) else None
            for ref in refs:
                span = scan.spans.get(ref.external_id) if scan else None
                if span and (data := _read_span(fh, span, ref.external_id)) is not None:
                    del wanted[ref.external_id]
                    yield RawItem(ref, data)
            counter = _IdCounter()
            for _, _, data in iter_messages(fh) if wanted else ():  # not cached: one pass over the file
                found = wanted.pop(counter.next_id(data), None)
                if found is not None:
                    yield RawItem(found, data)
                if not wanted:
                    break

    def close(self) -> None:
        self._scan = None

    def _scan_for(self, stat_key: tuple[int, int], fh: BinaryIO, snapshot: dict[str, str],
                  meta: Mapping[str, Any]) -> _Scan:
        if self._scan is not None and self._scan.stat_key == stat_key:
            return self._scan
        if _is_append(fh, stat_key[0], meta):
            scan = _Scan(stat_key, {k: i for i, k in enumerate(snapshot)})
            _read_into(scan, fh, int(meta["size"]), _IdCounter(snapshot))
        else:
            _check_mbox(fh)
            scan = _Scan(stat_key)
            _read_into(scan, fh, 0, _IdCounter())
        self._scan = scan
        return scan


def _read_into(scan: _Scan, fh: BinaryIO, start: int, counter: _IdCounter) -> None:
    for begin, end, data in iter_messages(fh, start, end=scan.stat_key[0]):
        external_id = counter.next_id(data)
        scan.order[external_id] = len(scan.order)
        scan.spans[external_id] = (begin, end)


def _is_append(fh: BinaryIO, size: int, meta: Mapping[str, Any]) -> bool:
    """Whether the file only grew since ``meta`` was taken and the old end is a message boundary."""
    old_size = meta.get("size")
    if not isinstance(old_size, int) or not 2 <= old_size < size:
        return False
    now = _file_meta(fh, old_size, 0)  # the same byte ranges as when the cursor was written
    if any(meta.get(k) != now[k] for k in ("head_len", "head", "end_len", "end")):
        return False
    fh.seek(max(0, old_size - 4))
    before = fh.read(old_size - max(0, old_size - 4))
    return before.endswith((b"\n\n", b"\r\n\r\n")) and fh.readline().startswith(b"From ")


def _check_mbox(fh: BinaryIO) -> None:
    fh.seek(0)
    head = fh.read(1024).lstrip(b"\r\n")
    if head and not head.startswith(b"From "):
        raise PermanentSourceError("not an mbox file: it does not start with a 'From ' line")


def _read_span(fh: BinaryIO, span: tuple[int, int], external_id: str) -> bytes | None:
    """The message in ``span`` if it still hashes to ``external_id`` (else the file changed: ``None``)."""
    fh.seek(span[0])
    found = next(iter_messages(io.BytesIO(fh.read(span[1] - span[0]))), None)
    if found is None or content_hash(found[2]) != external_id.partition("#")[0]:
        return None
    return found[2]

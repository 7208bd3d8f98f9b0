"""Decoded snapshots kept in memory between the listings of one process, by the cursor text they came from.

A Maildir cursor carries ``cur/``'s base from listing to listing as the very same text (``maildir.py``), so a
long-running process — the ``crm-sync sync`` loop, a worker — that lists the same large folder again finds the
base it decoded, or encoded, last time: 20,000 messages take about 6 ms to decode, and nothing to look up. A
new process (``sync --once``) decodes as before. The snapshots handed out are shared and must not be changed.

Bounded: at most ``max_snapshots`` snapshots and ``max_entries`` entries in all (about 200 bytes each), the
least recently used going first. Thread-safe (the embedded queue lists several mailboxes at once).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

Snapshot = dict[str, str]


class SnapshotCache:
    def __init__(self, max_snapshots: int = 8, max_entries: int = 200_000, min_entries: int = 1_000) -> None:
        self.max_snapshots, self.max_entries, self.min_entries = max_snapshots, max_entries, min_entries
        self._snapshots: OrderedDict[str, Snapshot] = OrderedDict()
        self._entries = 0
        self._lock = threading.Lock()

    def get(self, text: str, decode: Callable[[str], Snapshot]) -> Snapshot:
        """The snapshot of ``text``: the one kept, or ``decode(text)`` (kept if large enough to matter)."""
        with self._lock:
            found = self._snapshots.get(text)
            if found is not None:
                self._snapshots.move_to_end(text)
                return found
        snapshot = decode(text)
        self.put(text, snapshot)
        return snapshot

    def put(self, text: str, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` as the decoding of ``text`` (the caller no longer changes it)."""
        if not self.min_entries <= len(snapshot) <= self.max_entries:
            return
        with self._lock:
            old = self._snapshots.pop(text, None)
            self._entries -= len(old) if old is not None else 0
            self._snapshots[text] = snapshot
            self._entries += len(snapshot)
            while len(self._snapshots) > self.max_snapshots or self._entries > self.max_entries:
                _text, dropped = self._snapshots.popitem(last=False)
                self._entries -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._snapshots.clear()
            self._entries = 0

    def __len__(self) -> int:
        return len(self._snapshots)

"""The IMAP folder cursor and compact UID sets.

A cursor says what the pipeline has stored of one folder::

    imap1.<UIDVALIDITY>.<HIGH>.<HIGHESTMODSEQ>.<KNOWN>

- ``UIDVALIDITY``: the epoch the UIDs belong to; another value on the server means every UID is void.
- ``HIGH``: every UID ≤ HIGH has been listed (and stored); new mail always gets a UID above it.
- ``HIGHESTMODSEQ``: the folder's mod-sequence when the cursor was made (``0``: no CONDSTORE); QRESYNC asks
  the server what vanished since then.
- ``KNOWN``: the UIDs ≤ HIGH that existed then, as IMAP sequence-set ranges (``1:4990,4992:5000``), so deletes
  are found by comparing with the server's UID set; a long, fragmented set is stored as ``z`` +
  base64url(zlib(the range bounds as differences)), which stays small even for every other UID deleted.

A cursor that cannot be decoded counts as none (the folder is listed again; dedupe keeps that harmless).
"""

from __future__ import annotations

import base64
import bisect
import itertools
import logging
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

PREFIX = "imap1."
_COMPRESS_OVER = 1024


def to_ranges(uids: Iterable[int]) -> str:
    """``[1, 2, 3, 7]`` → ``"1:3,7"`` (sorted, duplicates dropped; ``""`` for none)."""
    parts: list[str] = []
    start = prev = -1
    for uid in sorted(set(uids)):
        if uid == prev + 1 and start >= 0:
            prev = uid
            continue
        if start >= 0:
            parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = uid
    if start >= 0:
        parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts)


def parse_ranges(text: str, upper: int | None = None) -> list[tuple[int, int]]:
    """``"1:3,7"`` → ``[(1, 3), (7, 7)]``. ``*`` stands for ``upper`` (a server's ``n:*``); ``b:a`` is ``a:b``."""
    spans: list[tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip()
        if part:
            low, _, high = part.partition(":")
            a = _number(low, upper)
            b = _number(high, upper) if high else a
            spans.append((min(a, b), max(a, b)))
    return spans


def from_ranges(text: str, upper: int | None = None, limit: int = 50_000_000) -> list[int]:
    """``"1:3,7"`` → ``[1, 2, 3, 7]``; refuses sets of more than ``limit`` UIDs (a damaged cursor)."""
    spans = parse_ranges(text, upper)
    if sum(b - a + 1 for a, b in spans) > limit:
        raise ValueError("UID set too large")
    uids: set[int] = set()
    for a, b in spans:
        uids.update(range(a, b + 1))
    return sorted(uids)


def members(uids: Iterable[int], text: str) -> set[int]:
    """The ``uids`` that lie inside the ranges ``text`` (without expanding them: a server may say ``1:4294967295``)."""
    spans = sorted(parse_ranges(text))
    starts = [a for a, _ in spans]
    reach = list(itertools.accumulate((b for _, b in spans), max))  # the highest end among spans[:i + 1]
    found: set[int] = set()
    for uid in uids:
        i = bisect.bisect_right(starts, uid) - 1
        if i >= 0 and uid <= reach[i]:
            found.add(uid)
    return found


def _number(token: str, upper: int | None) -> int:
    if token == "*":
        if upper is None:
            raise ValueError("'*' in a UID set without an upper bound")
        return upper
    value = int(token)
    if value < 0:
        raise ValueError("negative UID")
    return value


@dataclass(frozen=True, slots=True)
class FolderCursor:
    uidvalidity: int
    high: int
    modseq: int
    known: tuple[int, ...]  # sorted

    def encode(self) -> str:
        ranges = to_ranges(self.known)
        if len(ranges) > _COMPRESS_OVER:
            ranges = "z" + base64.urlsafe_b64encode(zlib.compress(_deltas(ranges).encode("ascii"), 9)).decode("ascii")
        return f"{PREFIX}{self.uidvalidity}.{self.high}.{self.modseq}.{ranges}"


def _deltas(ranges: str) -> str:
    """Every bound as the difference to the one before (``1:3,5`` → ``1 2 2 0``): regular gaps compress well."""
    numbers, prev = [], 0
    for a, b in parse_ranges(ranges):
        numbers += [a - prev, b - a]
        prev = b
    return " ".join(map(str, numbers))


def _undeltas(text: str) -> str:
    values = [int(v) for v in text.split()]
    if len(values) % 2:
        raise ValueError("malformed compressed UID set")
    parts, prev = [], 0
    for i in range(0, len(values), 2):
        a = prev + values[i]
        prev = b = a + values[i + 1]
        parts.append(f"{a}:{b}")
    return ",".join(parts)


def decode(cursor: str | None) -> FolderCursor | None:
    """The cursor's state, or ``None`` for no cursor or one that cannot be read (then: list everything)."""
    if not cursor:
        return None
    try:
        if not cursor.startswith(PREFIX):
            raise ValueError("not an IMAP cursor")
        validity, high, modseq, ranges = cursor[len(PREFIX):].split(".", 3)
        if ranges.startswith("z"):
            ranges = _undeltas(zlib.decompress(base64.urlsafe_b64decode(ranges[1:])).decode("ascii"))
        known = tuple(from_ranges(ranges))
        result = FolderCursor(int(validity), int(high), int(modseq), known)
        if result.high < 0 or result.modseq < 0 or (known and known[-1] > result.high):
            raise ValueError("inconsistent cursor")
        return result
    except (ValueError, zlib.error, UnicodeDecodeError) as error:
        log.warning("ignoring an undecodable IMAP cursor (%s); listing the folder again", error)
        return None

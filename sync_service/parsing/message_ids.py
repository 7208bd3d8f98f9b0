"""Message-ID, In-Reply-To and References header values → the ids the pipeline dedupes and threads on. Pure.

An id becomes part of ``synced_items.dedupe_key`` (``msg:<id>``, String(1100)) and ``message_id``
(String(1000)), and References end up in the item's facts, so a hostile value must come out storable — and the
same on SQLite and PostgreSQL, which refuses NUL in text and over-long varchars:
- whitespace, NUL and the other C0 control characters (and DEL) are removed: no real id contains them;
- an id longer than ``MAX_ID_CHARS`` becomes ``sha256:<hex of the lower-cased id>``: stable, so two copies
  of the same message still dedupe and a reply's References still find it (the same rule applies to both);
  lower-cased as ``items.email_key`` lower-cases ids;
- a malformed id with brackets inside (``<quote-11<script>@acme.example>``) is the whole outer bracketed text
  (``quote-11<script>@acme.example``), not the first inner ``<…>``: reading ``script`` would make different
  messages one. Well-formed values (no nested brackets: all normal mail) are read exactly as before.
"""

from __future__ import annotations

import hashlib
import re

from sync_service.parsing.charsets import clean_text

MAX_ID_CHARS = 990  # fits message_id (1000) and dedupe_key (1100, with its "msg:" prefix); real ids are < 250

_NOISE = re.compile(r"[\s\x00-\x1f\x7f]+")
_WELL_FORMED = re.compile(r"[^<>]*(?:<[^<>]*>[^<>]*)*")  # brackets only in flat pairs
_FLAT = re.compile(r"<([^<>]*)>")


def message_id(value: str) -> str | None:
    """The id of a Message-ID (or Content-ID) header value: the first bracketed id; without brackets, the
    whole value. None when nothing is left."""
    if _WELL_FORMED.fullmatch(value):
        match = _FLAT.search(value)
        ident = match.group(1) if match else value
    else:
        groups = _bracketed(value)
        ident = groups[0] if groups else value
    return _storable(_NOISE.sub("", ident).strip("<>"))


def message_ids(values: list[str]) -> tuple[str, ...]:
    """The ids of In-Reply-To / References values, in order, without repeats. Without angle brackets (broken
    clients) the tokens that look like ids (an ``@``) are kept."""
    ids: list[str] = []
    for value in values:
        if _WELL_FORMED.fullmatch(value):
            found = [g for g in _FLAT.findall(value) if g]
        else:  # as ``message_id`` reads such an id, so a reply still finds it
            found = [g.strip("<>") for g in _bracketed(value)]
        candidates = found or [token for token in re.split(r"[\s,]+", value) if "@" in token]
        ids.extend(_NOISE.sub("", c) for c in candidates)
    return tuple(dict.fromkeys(i for i in map(_storable, ids) if i))


def _bracketed(value: str) -> list[str]:
    """The texts of the outermost ``<…>`` groups, nested brackets kept inside (``<a<b>c>`` → ``a<b>c``)."""
    groups: list[str] = []
    depth, start = 0, 0
    for position, char in enumerate(value):
        if char == "<":
            if depth == 0:
                start = position + 1
            depth += 1
        elif char == ">" and depth:
            depth -= 1
            if depth == 0 and position > start:
                groups.append(value[start:position])
    return groups


def _storable(ident: str) -> str | None:
    ident = clean_text(ident)
    if len(ident) > MAX_ID_CHARS:
        return "sha256:" + hashlib.sha256(ident.lower().encode("utf-8")).hexdigest()
    return ident or None

"""Cursor and change pages of the CalDAV connector: a snapshot href → ETag plus the sync token or CTag.

The cursor is the file sources' snapshot format (``snapshot.encode_cursor``: sorted ids, zlib) with
metadata ``{"t": sync token, "c": CTag, "m": "sync" | "etag"}``. ``change_page`` diffs the calendar's current
ETags with the snapshot; the token / CTag is kept only on the last page, so an interrupted listing starts
again from the old one and the snapshot skips what was already stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from sync_service.connectors.base import ChangePage, ItemRef
from sync_service.connectors.snapshot import decode_state as decode_snapshot
from sync_service.connectors.snapshot import encode_cursor

_PROPFIND = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<d:propfind xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/">'
    "<d:prop><d:getetag/><d:resourcetype/><cs:getctag/></d:prop></d:propfind>"
)
_DAV = "{DAV:}"
_CTAG = "{http://calendarserver.org/ns/}getctag"


@dataclass(frozen=True, slots=True)
class State:
    snapshot: Mapping[str, str] = field(default_factory=dict)
    token: str | None = None
    ctag: str | None = None
    mode: str = "sync"  # "etag" once the server proved to lack sync-collection (or the URL asked for it)

    def encode(self) -> str:
        return encode_cursor(self.snapshot, {"t": self.token, "c": self.ctag, "m": self.mode})


def decode_state(cursor: str | None) -> State:
    snapshot, meta = decode_snapshot(cursor)
    token, ctag, mode = meta.get("t"), meta.get("c"), meta.get("m")
    return State(
        snapshot,
        token if isinstance(token, str) else None,
        ctag if isinstance(ctag, str) else None,
        mode if mode in ("sync", "etag") else "sync",
    )


def change_page(current: Mapping[str, str], state: State, limit: int, final: State) -> ChangePage:
    """One page of changes from ``state.snapshot`` to ``current`` (href → ETag); ``final`` carries the token /
    CTag that is valid once everything up to ``current`` is stored."""
    previous = state.snapshot
    deletes = tuple(sorted(k for k in previous if k not in current))
    changed = sorted(k for k, etag in current.items() if previous.get(k) != etag)
    page = changed[: max(1, limit)]
    more = len(changed) > len(page)
    snapshot = {k: v for k, v in previous.items() if k in current}
    snapshot.update((k, current[k]) for k in page)
    if more:  # keep the old token, drop the CTag: the next page lists again and skips what is stored
        cursor = State(snapshot, state.token, None, final.mode)
    else:
        cursor = State(snapshot, final.token, final.ctag, final.mode)
    upserts = tuple(ItemRef(k, "calendar", current[k]) for k in page)
    return ChangePage(upserts, deletes, cursor.encode(), more)


def propfind_etags(client: Any, url: str, depth: int = 1) -> tuple[str | None, dict[str, str]]:
    """``(CTag or None, {resource path: ETag})`` of a calendar collection by one PROPFIND (depth 0: CTag only)."""
    response = client.propfind(url, props=_PROPFIND, depth=depth)
    collection = url_path(url)
    ctag: str | None = None
    etags: dict[str, str] = {}
    tree = response.tree
    for item in tree.iter(f"{_DAV}response") if tree is not None else ():
        href = item.findtext(f"{_DAV}href") or ""
        path = url_path(href)
        ok_props = [
            p for s in item.iter(f"{_DAV}propstat") if " 200" in (s.findtext(f"{_DAV}status") or "")
            for p in s.iter(f"{_DAV}prop")
        ]
        if path.rstrip("/") == collection.rstrip("/"):
            ctag = next((p.findtext(_CTAG) for p in ok_props if p.find(_CTAG) is not None), None)
            continue
        if any(p.find(f"{_DAV}resourcetype/{_DAV}collection") is not None for p in ok_props):
            continue
        etag = next((p.findtext(f"{_DAV}getetag") for p in ok_props if p.find(f"{_DAV}getetag") is not None), None)
        etags[path] = etag or ""
    return ctag, etags


def url_path(url: object) -> str:
    """The unquoted path of a URL: servers and the library disagree on percent-encoding."""
    return unquote(urlsplit(str(url)).path)

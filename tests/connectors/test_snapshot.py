"""The shared snapshot cursor and page diff of the file sources."""

from __future__ import annotations

import base64
import json
import os
import random
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync_service.connectors.base import ItemKind
from sync_service.connectors.snapshot import (
    CURSOR_PREFIX,
    LEGACY_PREFIX,
    DiffPass,
    decode_cursor,
    decode_state,
    diff_page,
    encode_cursor,
)


def _current(versions: dict[str, str], kind: ItemKind = "message") -> dict[str, tuple[str, ItemKind]]:
    return {k: (v, kind) for k, v in versions.items()}


def _raw_cursor(payload: object) -> str:
    return LEGACY_PREFIX + base64.urlsafe_b64encode(zlib.compress(json.dumps(payload).encode())).decode()


def _raw_fields(*fields: str) -> str:
    return CURSOR_PREFIX + base64.urlsafe_b64encode(zlib.compress("\0".join(fields).encode())).decode()


def test_roundtrip_with_meta_and_unicode_ids() -> None:
    snap = {"a/b.eml": "1:2", "a/bc.eml": "3:4", "é/ü.eml": "", "z": "9"}
    cursor = encode_cursor(snap, {"size": 10})
    assert cursor.startswith(CURSOR_PREFIX)
    assert decode_state(cursor) == (snap, {"size": 10})
    assert decode_cursor(cursor) == snap
    assert decode_state(encode_cursor({})) == ({}, {})


def test_cursors_of_the_front_coded_form_are_still_read() -> None:
    # fs1 is what every stored cursor was before fs2: {"v": 1, "k": [[shared, suffix], …], "r": versions}
    cursor = _raw_cursor({"v": 1, "k": [[0, "a/b.eml"], [2, "c.eml"], [0, "z"]], "r": ["1:2", "3:4", "9"],
                          "m": {"size": 10}})
    assert decode_state(cursor) == ({"a/b.eml": "1:2", "a/c.eml": "3:4", "z": "9"}, {"size": 10})


def test_an_id_with_a_nul_is_written_in_the_front_coded_form() -> None:
    snap = {"a\0b": "1", "c": "2\0"}
    cursor = encode_cursor(snap, {"x": 1})
    assert cursor.startswith(LEGACY_PREFIX)
    assert decode_state(cursor) == (snap, {"x": 1})


def test_a_file_name_that_is_not_utf8_round_trips() -> None:
    name = os.fsdecode(b"17000.M1P2.host-\xff\xfe")  # what os.listdir gives for such a name
    assert decode_cursor(encode_cursor({name: "5"})) == {name: "5"}


@pytest.mark.parametrize(
    "cursor",
    [
        None,
        "",
        "garbage",
        "fs1.!!!not-base64",
        CURSOR_PREFIX + base64.urlsafe_b64encode(b"not zlib").decode(),
        _raw_cursor([1, 2]),
        _raw_cursor({"v": 99, "k": [], "r": [], "m": {}}),
        _raw_cursor({"v": 1, "k": [[0, "a"]], "r": [], "m": {}}),
        _raw_cursor({"v": 1, "k": [[5, "a"]], "r": ["x"], "m": {}}),
        _raw_cursor({"v": 1, "k": [[0, 7]], "r": ["x"], "m": {}}),
        _raw_cursor({"v": 1, "k": [["x"]], "r": ["x"], "m": {}}),
        _raw_cursor({"v": 1, "k": [], "r": []}),
        _raw_fields('{"v":2,"n":1,"m":{}}', "a"),
        _raw_fields('{"v":2,"n":1,"m":{}}', "a", "1", "extra"),
        _raw_fields('{"v":2,"n":"1","m":{}}', "a", "1"),
        _raw_fields('{"v":2,"n":true,"m":{}}', "a", "1"),
        _raw_fields('{"v":2,"n":1,"m":[]}', "a", "1"),
        _raw_fields('{"v":3,"n":0,"m":{}}'),
        _raw_fields("[2]"),
        _raw_fields("not json", "a", "1"),
        CURSOR_PREFIX + base64.urlsafe_b64encode(zlib.compress(b"\xff\xfe")).decode(),
    ],
)
def test_undecodable_cursor_means_full_listing(cursor: str | None) -> None:
    assert decode_state(cursor) == ({}, {})
    page = diff_page(_current({"a": "1", "b": "2"}), decode_cursor(cursor), 10)
    assert {r.external_id for r in page.upserts} == {"a", "b"}


def _maildir_like_ids(n: int) -> dict[str, str]:
    rng = random.Random(7)
    out = {}
    for i in range(n):
        size = rng.randrange(2_000, 200_000)
        key = f"{1_700_000_000 + i * 37}.M{rng.randrange(10**6)}P{rng.randrange(10**5)}.mx1.example.com,S={size}"
        out[key] = str(size)
    return out


def _emldir_like_ids(n: int) -> dict[str, str]:
    rng = random.Random(8)
    return {
        f"archive/2024/{i // 500:03d}/message-{i:05d}.eml":
            f"{(1_700_000_000 + i * 37) * 10**9 + rng.randrange(10**9)}:{rng.randrange(2_000, 200_000)}"
        for i in range(n)
    }


@pytest.mark.parametrize("make", [_maildir_like_ids, _emldir_like_ids])
def test_20000_entry_cursor_stays_well_under_a_megabyte(make) -> None:  # type: ignore[no-untyped-def]
    snap = make(20_000)
    cursor = encode_cursor(snap, {"size": 1})
    assert len(cursor) < 600_000, len(cursor)
    assert decode_cursor(cursor) == snap


def test_paging_covers_everything_once_oldest_first() -> None:
    versions = {f"id{i:02d}": f"{1000 - i}:10" for i in range(7)}  # id06 is the oldest
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = diff_page(_current(versions), decode_cursor(cursor), 3)
        seen += [r.external_id for r in page.upserts]
        cursor, pages = page.next_cursor, pages + 1
        if not page.more:
            break
    assert pages == 3
    assert seen == sorted(versions, reverse=True)
    assert decode_cursor(cursor) == versions
    assert diff_page(_current(versions), decode_cursor(cursor), 3).upserts == ()


def test_next_cursor_holds_only_this_pages_upserts_and_drops_deletes() -> None:
    previous = {"gone": "1:1", "kept": "2:2", "changed": "3:3"}
    current = {"kept": "2:2", "changed": "3:4", "new1": "4:1", "new2": "5:1"}
    page = diff_page(_current(current), previous, 2)
    assert page.deletes == ("gone",)
    assert [r.external_id for r in page.upserts] == ["changed", "new1"]
    assert page.more
    assert decode_cursor(page.next_cursor) == {"kept": "2:2", "changed": "3:4", "new1": "4:1"}
    page2 = diff_page(_current(current), decode_cursor(page.next_cursor), 2)
    assert page2.deletes == ()  # deletes all came with the first page
    assert [r.external_id for r in page2.upserts] == ["new2"]
    assert not page2.more


def test_ref_carries_kind_and_version_and_meta_only_on_last_page() -> None:
    current = _current({"a": "1:1", "b": "2:2"}, "calendar")
    first = diff_page(current, {}, 1, meta={"size": 5})
    assert first.upserts[0].kind == "calendar" and first.upserts[0].version == "1:1"
    assert decode_state(first.next_cursor)[1] == {}
    last = diff_page(current, decode_cursor(first.next_cursor), 1, meta={"size": 5})
    assert not last.more and decode_state(last.next_cursor)[1] == {"size": 5}


@pytest.mark.parametrize("limit", [1, 3, 100])
def test_a_pass_gives_the_pages_diffing_each_cursor_again_gives(limit: int) -> None:
    previous = {f"old{i}": f"{i}:1" for i in range(6)}
    current = {k: v for k, v in previous.items() if k not in ("old1", "old4")}
    current |= {"old2": "2:2", "old5": "5:9"} | {f"new{i}": f"{50 - i}:3" for i in range(8)}
    keys = []

    def order(key: str) -> tuple[int, str]:
        return (int(current[key].partition(":")[0]), key)

    def counted(key: str) -> tuple[int, str]:
        keys.append(key)
        return order(key)

    passing = DiffPass(_current(current), previous, sort_key=counted)
    cursor, pages = encode_cursor(previous), 0
    while True:
        page = passing.next_page(limit, meta={"end": 1})
        again = diff_page(_current(current), decode_cursor(cursor), limit, meta={"end": 1}, sort_key=order)
        assert page == again
        cursor, pages = page.next_cursor, pages + 1
        if not page.more:
            break
    assert pages == -(-10 // limit)  # 2 changed + 8 new, the deletes with the first page
    assert decode_state(cursor) == (current, {"end": 1})
    assert sorted(keys) == sorted(k for k in current if previous.get(k) != current[k])  # ordered once


def test_custom_sort_key_and_nonpositive_limit() -> None:
    order = {"x": 2, "y": 0, "z": 1}
    page = diff_page(_current(dict.fromkeys(order, "")), {}, 0, sort_key=order.__getitem__)
    assert [r.external_id for r in page.upserts] == ["y"] and page.more


@given(st.dictionaries(st.text(alphabet="ab.:é1\0\udcff", max_size=12), st.text(max_size=5), max_size=40),
       st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
def test_any_snapshot_survives_either_form(snap: dict[str, str], meta: dict[str, int]) -> None:
    assert decode_state(encode_cursor(snap, meta)) == (snap, meta)

"""Message-IDs, In-Reply-To and References come out storable and distinct (audit 17a F1, F10): control
characters removed, an over-long id as a stable digest, a malformed id with brackets inside read whole — and
well-formed ids exactly as before, so the keys of stored mail do not change."""

from __future__ import annotations

import pytest

from sync_service.parsing.message_ids import MAX_ID_CHARS, message_id, message_ids
from sync_service.parsing.mime import parse_headers


def _headers(*lines: str) -> bytes:
    return ("\r\n".join(["From: bob@acme.example", "To: alice@northwind.example", *lines]) + "\r\n\r\nbody").encode(
        "utf-8"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<a@b.example>", "a@b.example"),
        (" <a@b.example> (added by the relay)", "a@b.example"),
        ("a@b.example", "a@b.example"),
        ("<a@b.example", "a@b.example"),
        ("<<a@b.example>>", "a@b.example"),
        ("< a @ b.example >", "a@b.example"),
        ("foo <a@b.example> <c@d.example>", "a@b.example"),
        ("<>", None),
        ("", None),
    ],
)
def test_well_formed_and_common_broken_ids_read_as_before(value: str, expected: str | None) -> None:
    assert message_id(value) == expected


def test_nul_and_control_characters_are_removed_from_ids() -> None:
    headers = parse_headers(
        _headers("Message-ID: <nul\x00mid\x1b@acme.example>", "References: <r\x00ef@acme.example> <x@y.example>")
    )
    assert headers.message_id == "nulmid@acme.example"
    assert headers.references == ("ref@acme.example", "x@y.example")


def test_an_over_long_id_becomes_a_stable_digest_that_references_find_too() -> None:
    long_id = "m" * 10_000 + "@acme.example"
    first = parse_headers(_headers(f"Message-ID: <{long_id}>"))
    copy = parse_headers(_headers(f"Message-ID: <{long_id}>", "X-Copy: 2"))
    reply = parse_headers(_headers("Message-ID: <reply@acme.example>", f"In-Reply-To: <{long_id}>"))
    assert first.message_id is not None and len(first.message_id) <= MAX_ID_CHARS
    assert first.message_id.startswith("sha256:")
    assert copy.message_id == first.message_id  # two copies of one message still dedupe
    assert reply.in_reply_to == (first.message_id,)  # and a reply still threads
    assert message_id("<" + "n" * 10_000 + "@acme.example>") != first.message_id
    edge = "e" * MAX_ID_CHARS
    assert message_id(f"<{edge}>") == edge  # up to the limit, an id is kept as it is


def test_malformed_ids_with_brackets_inside_stay_distinct() -> None:
    a = parse_headers(_headers("Message-ID: <quote-2026-11<script>@acme.example>"))
    b = parse_headers(_headers("Message-ID: <order-77<script>@acme.example>"))
    assert a.message_id == "quote-2026-11<script>@acme.example"
    assert b.message_id == "order-77<script>@acme.example"
    reply = parse_headers(_headers("References: <a@acme.example> <order-77<script>@acme.example>"))
    assert reply.references == ("a@acme.example", b.message_id)


def test_references_of_well_formed_ids_read_as_before() -> None:
    assert message_ids(["<a@b> <c@d>", "<c@d>,<e@f>", "g@h i@j"]) == ("a@b", "c@d", "e@f", "g@h", "i@j")

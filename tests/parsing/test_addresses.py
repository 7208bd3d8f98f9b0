"""Address headers: the plain-shape reader gives exactly what ``getaddresses`` gives, or declines."""

from __future__ import annotations

from email.utils import getaddresses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync_service.parsing.addresses import parse_addresses, plain_addresses
from sync_service.values import Address


def test_plain_shapes_are_read_without_getaddresses() -> None:
    values = ['Ann  Q. Lee <ann@acme.example>, "Lee, Bob" <bob@acme.example>', "carol.o'neil@globex.example"]
    assert plain_addresses(values) == [
        ("Ann Q. Lee", "ann@acme.example"),
        ("Lee, Bob", "bob@acme.example"),
        ("", "carol.o'neil@globex.example"),
    ]
    assert plain_addresses(values) == getaddresses(values)


def test_other_shapes_are_left_to_getaddresses() -> None:
    for value in [
        "undisclosed-recipients:;",
        "ann@acme.example (Ann Lee)",
        '"Lee \\"The Boss\\" Ann" <ann@acme.example>',
        "Ann Lee ann@acme.example",
        "ann@acme.example,",
        "Ann\xa0Lee <ann@acme.example>",
        "<@route:ann@acme.example>",
        "ann@acme.example.",
    ]:
        assert plain_addresses([value]) is None, value
    assert parse_addresses(["Ann Lee ann@acme.example"]) == (Address("ann@acme.example", "Ann Lee"),)


_PIECES = st.sampled_from(
    ["ann@acme.example", "a.b+c@x-y.example", "Ann", "Q.", "Zoë", "O'Neil", '"Lee, Ann"', '""', '" spaced "',
     "<ann@acme.example>", "<bob@b.example>", " ", "\t", ",", ", ", "(comment)", ":", ";", "@", ".", "<", ">",
     '"', "\\", "bad..dots@x.example", "x@[127.0.0.1]", "\xa0", "=?utf-8?q?x?=", "ann@acme.example."]
)  # fmt: skip


_BLANKS = st.sampled_from(["", " ", "  ", "\t"])
_ADDRS = st.sampled_from(["ann@acme.example", "a.b+c@x-y.example", "X_Y@B.EXAMPLE", "o'neil@globex.example"])
_WORDS = st.sampled_from(["Ann", "Q.", "Zoë", "O'Neil", "van", "Dr.", ".", "José-María"])
_QUOTED = st.sampled_from(['"Lee, Ann"', '""', '" spaced "', '"a (b) <c>"', '"Ann"'])


@st.composite
def address_list(draw: st.DrawFn) -> str:
    """Mostly plain shapes, sometimes with a random piece spliced in (which the reader must then decline or
    still read exactly as getaddresses does)."""
    elements = []
    for _ in range(draw(st.integers(1, 3))):
        shape = draw(st.sampled_from(["bare", "words", "quoted"]))
        if shape == "bare":
            element = draw(_ADDRS)
        else:
            name = draw(_QUOTED) if shape == "quoted" else draw(_BLANKS.flatmap(lambda b: _WORDS.map(lambda w: w + b)))
            if shape == "words":
                name += "".join(draw(st.lists(_WORDS.map(lambda w: " " + w), max_size=3)))
            element = name + draw(_BLANKS) + "<" + draw(_ADDRS) + ">"
        elements.append(draw(_BLANKS) + element + draw(_BLANKS))
    value = ",".join(elements)
    if draw(st.integers(0, 3)) == 0:
        at = draw(st.integers(0, len(value)))
        value = value[:at] + draw(_PIECES) + value[at:]
    return value


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(address_list() | st.lists(_PIECES, max_size=8).map("".join), min_size=1, max_size=3))
def test_the_plain_reader_agrees_with_getaddresses(values: list[str]) -> None:
    plain = plain_addresses(values)
    if plain is not None:
        assert plain == getaddresses(values)

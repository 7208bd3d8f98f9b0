"""Audit 17a F2: photos, logos, sounds and keys never reach vobject (its unfolding is quadratic), and one card's text
is capped: a too large card is one problem line, its neighbours are read. F7: NUL leaves a card's values."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import vobject

from sync_service.parsing import vcard
from sync_service.parsing.vcard import parse_vcards
from sync_service.parsing.vcard_split import MAX_CARD_CHARS

GOOD = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Good Neighbour\r\nEMAIL:good@acme.example\r\nEND:VCARD\r\n"


def folded(value: str, first: str) -> str:
    """``first`` + ``value`` folded at 74 columns (each continuation line starts with a space)."""
    return "\r\n ".join([first + value[:74], *(value[i : i + 74] for i in range(74, len(value), 74))])


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts vobject is given, one per card."""
    texts: list[str] = []
    read = vobject.readOne

    def spy(text: str, *args: Any, **kwargs: Any) -> Any:
        texts.append(text)
        return read(text, *args, **kwargs)

    monkeypatch.setattr(vcard.vobject, "readOne", spy)
    return texts


def test_binary_properties_are_left_out_before_vobject(seen: list[str]) -> None:
    photo = base64.b64encode(bytes(range(256)) * 1200).decode()  # 400 KB of base64, 5,500 folded lines
    card = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Photo Person\r\n"
        + folded(photo, "PHOTO;ENCODING=b;TYPE=JPEG:") + "\r\n"
        + "EMAIL:photo@acme.example\r\n"
        + folded(photo[:5000], "item1.LOGO;ENCODING=b:") + "\r\n"
        + folded(photo[:5000], "X-MS-CARDPICTURE;TYPE=JPEG;ENCODING=BASE64:") + "\r\n"
        + "KEY;TYPE=PGP:" + photo[:3000] + "\r\n"
        + "TEL;TYPE=cell:+1 212 555 0100\r\nEND:VCARD\r\n"
    )  # fmt: skip
    cards, problems = parse_vcards((GOOD + card).encode())
    assert problems == []
    assert [(c.full_name, c.emails, c.phones) for c in cards] == [
        ("Good Neighbour", ("good@acme.example",), ()),
        ("Photo Person", ("photo@acme.example",), (("cell", "+1 212 555 0100"),)),
    ]
    # vobject's work is bounded by what it is given: not the 400 KB picture (quadratic to unfold), a few lines.
    assert max(len(text) for text in seen) < 200


def test_a_vcard21_photo_written_unindented_is_left_out(seen: list[str]) -> None:
    photo = base64.b64encode(bytes(range(256)) * 20).decode()
    lines = "\r\n".join(photo[i : i + 76] for i in range(0, len(photo), 76))
    card = (
        "BEGIN:VCARD\r\nVERSION:2.1\r\nN:Doe;Jane\r\nFN:Jane Doe\r\n"
        f"PHOTO;JPEG;BASE64:\r\n{lines}\r\n\r\n"
        "EMAIL;INTERNET:jane@acme.example\r\nEND:VCARD\r\n"
    )
    cards, problems = parse_vcards(card.encode())
    assert problems == []
    assert (cards[0].full_name, cards[0].emails) == ("Jane Doe", ("jane@acme.example",))
    assert len(seen[0]) < 200


def test_a_card_too_large_is_one_problem_and_never_parsed(seen: list[str]) -> None:
    note = "x" * (MAX_CARD_CHARS + 1000)
    big = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Big\r\n" + folded(note, "NOTE:") + "\r\nEND:VCARD\r\n"
    cards, problems = parse_vcards((GOOD + big + GOOD.replace("good@", "after@")).encode())
    assert [c.emails for c in cards] == [("good@acme.example",), ("after@acme.example",)]
    assert len(problems) == 1
    assert problems[0].startswith("card 2: card too large: 2")
    assert problems[0].endswith(
        "characters without its photos, logos, sounds and keys (the limit is 256,000) (card starts at line 6)"
    )
    assert len(seen) == 2  # the big card never reached vobject


def test_nul_leaves_the_values_and_a_long_type_is_no_phone_kind() -> None:
    card = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:nul\x00name\r\nN:Na\x00me;Jo\x00e;;;\r\nORG:Ac\x00me\r\n"
        f"EMAIL:nul\x00fn@acme.example\r\nTEL;TYPE={'w' * 40}:+1 212 555 0100\r\nEND:VCARD\r\n"
    )
    [found], problems = parse_vcards(card.encode())
    assert problems == []
    assert (found.full_name, found.first_name, found.last_name, found.company) == ("nulname", "Joe", "Name", "Acme")
    assert found.emails == ("nulfn@acme.example",)
    assert found.phones == (("other", "+1 212 555 0100"),)

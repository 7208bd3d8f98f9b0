"""parse_vcards: vCard 2.1 / 3.0 / 4.0 bytes → ContactCard values, one error boundary per card."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync_service.errors import ParseError
from sync_service.parsing.vcard import parse_vcards
from sync_service.values import ContactCard

DATA = Path(__file__).resolve().parents[1] / "data" / "contacts"


def load(name: str) -> tuple[list[ContactCard], list[str]]:
    return parse_vcards((DATA / name).read_bytes())


def test_vcard3_with_a_broken_card() -> None:
    cards, problems = load("contacts_v3.vcf")
    assert [c.full_name for c in cards] == ["Dr. Jörg Karl Müller", "Åse Søndergaard", "Pat O'Brien"]
    joerg = cards[0]
    assert (joerg.first_name, joerg.middle_name, joerg.last_name) == ("Jörg", "Karl", "Müller")
    assert joerg.company == "ACME Maschinenbau GmbH"  # first ORG component, not the department
    assert joerg.job_title == "Head of Procurement"
    assert joerg.emails == ("joerg.mueller@acme.example", "jkm@mail.example")
    assert joerg.phones == (
        ("work", "+49 30 1234567"),
        ("cell", "+49 170 7654321"),
        ("fax", "+49 30 7777777"),
        ("other", "030 555 000"),
    )
    assert joerg.uid == "7C1B6C2E-4C36-4F2A-9E0D-0A9F3B2D1E11"
    ase = cards[1]  # no FN: built from N
    assert (ase.first_name, ase.last_name, ase.uid) == ("Åse", "Søndergaard", None)
    assert cards[2].phones == (("work", "+1 (425) 555-0100"),)
    [problem] = problems
    assert problem.startswith("card 3: ") and "\n" not in problem


def test_vcard4_uri_phones_several_emails_and_an_unterminated_card() -> None:
    cards, problems = load("contacts_v4.vcf")
    assert [c.full_name for c in cards] == ["Zoë Ångström", "李小龍", "Ola Nordmann"]
    zoe = cards[0]
    assert (zoe.first_name, zoe.middle_name, zoe.last_name) == ("Zoë", "Maria Anna", "Ångström")
    assert (zoe.company, zoe.job_title) == ("Contoso Ltd.", "CTO")
    assert zoe.emails == ("zoe@contoso.example", "zoe.private@mail.example")
    assert zoe.phones == (("work", "+1-555-555-5555"), ("cell", "+1-555-000-1111"))
    assert zoe.uid == "urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1"
    assert cards[1].phones == (("home", "+86 10 1234 5678"),)
    assert problems == ["card 3: no END:VCARD (card starts at line 19)"]


def test_vcard21_quoted_printable_with_bom() -> None:
    [card], problems = load("contacts_v21_qp.vcf")
    assert problems == []
    assert card.full_name == "Jörg Müller"
    assert (card.first_name, card.last_name) == ("Jörg", "Müller")
    assert card.emails == ("joerg@acme.example",)
    assert card.phones == (("work", "+49 30 1234567"), ("cell", "+49 170 7654321"))


def test_latin1_fallback() -> None:
    [card], _ = load("latin1.vcf")
    assert card.full_name == "José Gonçalves" and card.last_name == "Gonçalves"


def test_windows_1252_export_keeps_its_typographic_characters() -> None:
    # Outlook on Windows writes 8-bit cards in Windows-1252: 0x92 is an apostrophe, not a C1 control.
    raw = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Seán O’Brien – Sales\r\nEND:VCARD\r\n".encode("cp1252")
    [card], _ = parse_vcards(raw)
    assert card.full_name == "Seán O’Brien – Sales"


def test_card_without_name_uses_org_then_email() -> None:
    raw = (
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nORG:Fabrikam\r\nEND:VCARD\r\n"
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nEMAIL:Info@Example.com\r\nEND:VCARD\r\n"
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nNOTE:nothing useful\r\nEND:VCARD\r\n"
    )
    cards, problems = parse_vcards(raw)
    assert [c.full_name for c in cards] == ["Fabrikam", "info@example.com"]
    assert len(problems) == 1 and problems[0].startswith("card 3: ")


@pytest.mark.parametrize("raw", [b"", b"not a vcard", b"\x00\x01\x02" * 30])
def test_no_vcard_at_all_raises(raw: bytes) -> None:
    with pytest.raises(ParseError):
        parse_vcards(raw)


def test_only_broken_cards_raise() -> None:
    with pytest.raises(ParseError, match="card 1"):
        parse_vcards(b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN Broken\r\nEND:VCARD\r\n")


def test_utf16_with_bom() -> None:
    text = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Łukasz Nowak\r\nEMAIL:lukasz@example.pl\r\nEND:VCARD\r\n"
    [card], _ = parse_vcards(text.encode("utf-16"))
    assert card.full_name == "Łukasz Nowak" and card.emails == ("lukasz@example.pl",)

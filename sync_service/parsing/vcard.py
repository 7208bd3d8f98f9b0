"""vCard 2.1 / 3.0 / 4.0 bytes → :class:`ContactCard` values (SPEC §5 ``import contacts FILE.vcf``, §6).

The text is split into ``BEGIN:VCARD`` … ``END:VCARD`` blocks first (``vcard_split``: photos, logos, sounds
and keys left out, a card's size capped), and each block is parsed with ``vobject`` in its own error boundary: a
broken or too large card becomes one problem line (``card N: reason``) and the others go on. Only input without
a single readable card raises :class:`ParseError`. NUL characters and lone surrogates are removed from the values
(``charsets.clean_text``): PostgreSQL cannot store them.
"""

from __future__ import annotations

from typing import Any

import vobject

from sync_service.errors import ParseError
from sync_service.parsing.charsets import clean_text, decode_text_file
from sync_service.parsing.vcard_split import MAX_CARD_CHARS, CardText, split_cards
from sync_service.values import ContactCard

__all__ = ["parse_vcards"]

# TYPE values that name the kind of a phone, in order of preference when several are given.
_PHONE_KINDS = (("cell", "cell"), ("mobile", "cell"), ("iphone", "cell"), ("fax", "fax"), ("pager", "pager"),
                ("work", "work"), ("home", "home"), ("main", "main"))  # fmt: skip
# TYPE values that say nothing about whose phone it is.
_GENERIC_TYPES = {"voice", "pref", "text", "msg", "internet", "video", "textphone", "x400"}
# A TYPE word longer than this is no kind of phone (and would not fit ``ContactPhone.kind``, 30 characters).
_MAX_KIND = 30


def parse_vcards(raw: bytes) -> tuple[list[ContactCard], list[str]]:
    """Parse every card in ``raw``; returns (cards, one-line problems for the cards that were skipped)."""
    blocks = split_cards(decode_text_file(raw))
    if not blocks:
        raise ParseError("no vCard found (no BEGIN:VCARD)")
    cards: list[ContactCard] = []
    problems: list[str] = []
    for block in blocks:
        try:
            cards.append(_card(_checked(block)))
        except Exception as exc:  # one broken card must not stop the others
            problems.append(f"card {block.number}: {_one_line(exc)} (card starts at line {block.line})")
    if not cards:
        raise ParseError(f"no readable vCard: {problems[0]}")
    return cards, problems


def _checked(block: CardText) -> str:
    """The block's text for vobject; ``ValueError`` for a card too large or not terminated."""
    if block.too_large:
        raise ValueError(
            f"card too large: {block.size:,} characters without its photos, logos, sounds and keys "
            f"(the limit is {MAX_CARD_CHARS:,})"
        )
    if not block.text.rstrip().upper().endswith("END:VCARD"):
        raise ValueError("no END:VCARD")
    return block.text


def _card(block: str) -> ContactCard:
    card = vobject.readOne(block, allowQP=True)
    first, middle, last, built_name = _name_parts(_first(card, "n"))
    emails = tuple(dict.fromkeys(e for p in _all(card, "email") if (e := _value_text(p).strip().lower())))
    phones = tuple((_phone_kind(prop), number) for prop in _all(card, "tel") if (number := _phone_number(prop)))
    org = _first(card, "org")  # ORG:Company;Department — the company is the first component
    company = _joined((org.value or [""])[:1] if isinstance(org.value, list) else org.value) if org else ""
    full_name = _value_text(_first(card, "fn")).strip() or built_name or company or next(iter(emails), "")
    if not full_name:
        raise ValueError("card has no name, organisation or email")
    uid = _value_text(_first(card, "uid")).strip()
    return ContactCard(
        full_name=full_name,
        first_name=first,
        middle_name=middle,
        last_name=last,
        company=company,
        job_title=_value_text(_first(card, "title")).strip(),
        emails=emails,
        phones=phones,
        uid=uid or None,
    )


def _all(card: Any, name: str) -> list[Any]:
    return list(card.contents.get(name, []))


def _first(card: Any, name: str) -> Any:
    values = _all(card, name)
    return values[0] if values else None


def _value_text(prop: Any) -> str:
    """A property value as text; structured values (lists, ORG components) joined with ``;``."""
    if prop is None:
        return ""
    value = prop.value
    if isinstance(value, bytes):
        return clean_text(value.decode("utf-8", "replace"))
    if isinstance(value, list | tuple):
        return ";".join(_joined(part) for part in value)
    return clean_text(str(value))


def _joined(part: Any) -> str:
    return clean_text(" ".join(str(p) for p in part if p) if isinstance(part, list | tuple) else str(part or ""))


def _name_parts(prop: Any) -> tuple[str, str, str, str]:
    """(first, middle, last, "prefix first middle last suffix") from an N property."""
    if prop is None or isinstance(prop.value, str):
        return "", "", "", ""
    name = prop.value
    parts = ("prefix", "given", "additional", "family", "suffix")
    prefix, first, middle, last, suffix = (_joined(getattr(name, part, "")).strip() for part in parts)
    return first, middle, last, " ".join(p for p in (prefix, first, middle, last, suffix) if p)


def _phone_number(prop: Any) -> str:
    number = _value_text(prop).strip()
    if number.lower().startswith("tel:"):  # vCard 4 VALUE=uri; drop URI parameters such as ;ext=
        number = number[4:].split(";")[0].strip()
    return number


def _phone_kind(prop: Any) -> str:
    """The TYPE of a TEL as one lower-case word: cell, work, home, fax…; "other" when none is given."""
    types: list[str] = []
    for value in [*prop.params.get("TYPE", []), *getattr(prop, "singletonparams", [])]:
        types.extend(t.strip().strip('"').lower() for t in str(value).split(",") if t.strip())
    for word, kind in _PHONE_KINDS:
        if word in types:
            return kind
    specific = [t for t in types if t not in _GENERIC_TYPES and not t.startswith("x-") and len(t) <= _MAX_KIND]
    return specific[0] if specific else "other"


def _one_line(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:200]

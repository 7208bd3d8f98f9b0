"""A small CRM world as a ``CandidateIndex`` built by hand, and builders for item facts.

Users: rep@ourco.com (internal domain ourco.com) and ann@gmail.com (a rep with a private address).
Accounts: 3 Acme (acme.com, acme.co.uk), 5 Globex (globex.com), 8 Bücher (bücher.de).
Contacts: 12 Bob at Acme (bob@acme.com, bob.smith@acme.com, +1 202 555 0123), 13 Carol at Globex,
14 Dave at Acme with a gmail address, 15 and 16 sharing team@globex.com, 17 without an account,
18 Uwe at Bücher. Leads: 40 lena@startup.io, 41 by phone +49 30 12345678.
Opportunities: 7 (Acme, contact 12), 9 (Globex, contact 13), 10 (Globex), 11 closed (Acme).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sync_service.matching.model import CandidateIndex, ItemFacts
from sync_service.values import Address

Person = str | tuple[str, str]  # "bob@acme.com" or ("Bob Builder", "bob@acme.com")


def build_index(**overrides: Any) -> CandidateIndex:
    values: dict[str, Any] = {
        "internal_domains": frozenset({"ourco.com"}),
        "user_emails": {"rep@ourco.com": 1, "ann@gmail.com": 2},
        "never_log": frozenset({"secret@acme.com", "hr-partner.com"}),
        "contacts_by_email": {
            "bob@acme.com": (12,),
            "bob.smith@acme.com": (12,),
            "carol@globex.com": (13,),
            "dave@gmail.com": (14,),
            "team@globex.com": (15, 16),
            "solo@freelance.io": (17,),
            "uwe@bücher.de": (18,),
        },
        "contacts_by_phone": {"+12025550123": (12,)},
        "contact_account": {12: 3, 13: 5, 14: 3, 15: 5, 16: 5, 17: None, 18: 8},
        "leads_by_email": {"lena@startup.io": (40,)},
        "leads_by_phone": {"+493012345678": (41,)},
        "account_by_domain": {"acme.com": 3, "acme.co.uk": 3, "globex.com": 5, "bücher.de": 8},
        "open_opps_by_contact": {12: (7,), 13: (9,)},
        "open_opps_by_account": {3: (7,), 5: (9, 10)},
        "open_opportunities": frozenset({7, 9, 10}),
        "opportunity_account": {7: 3, 9: 5, 10: 5, 11: 3},
        "thread_opportunity": {"m1@acme.com": 7, "m2@globex.com": 9, "conv-acme": 7},
    }
    values.update(overrides)
    return CandidateIndex(**values)


def address(person: Person) -> Address:
    if isinstance(person, tuple):
        return Address(email=person[1], name=person[0])
    return Address(email=person)


def make_facts(sender: Person | None, *participants: Person, **kw: Any) -> ItemFacts:
    kw.setdefault("kind", "email")
    return ItemFacts(
        sender=address(sender) if sender is not None else None,
        participants=tuple(address(p) for p in participants),
        **kw,
    )


@pytest.fixture
def index() -> CandidateIndex:
    return build_index()


@pytest.fixture
def facts() -> Callable[..., ItemFacts]:
    """``facts(sender, *participants, subject=…, kind=…)``: an email unless ``kind`` says otherwise."""
    return make_facts


@pytest.fixture
def make_index() -> Callable[..., CandidateIndex]:
    """``make_index(**overrides)``: the standard world with some fields replaced."""
    return build_index

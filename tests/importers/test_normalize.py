"""Cell values: domains, addresses, Outlook address cells, amounts, dates, phones."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from sync_service.importers.normalize import (
    account_domain,
    amount,
    day,
    email_address,
    hostname,
    name_key,
    outlook_email,
    phone,
    split_list,
)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("acme.com", "acme.com"),
        (" ACME.com. ", "acme.com"),
        ("@acme.com", "acme.com"),
        ("www.acme.com", "acme.com"),
        ("https://www.Acme.com/about", "acme.com"),
        ("eu.acme.co.uk", "eu.acme.co.uk"),
        ("Bücher.de", "bücher.de"),
        ("xn--bcher-kva.de", "bücher.de"),
        ("ab--cd.com", "ab--cd.com"),
    ],
)
def test_account_domain(cell: str, expected: str) -> None:
    assert account_domain(cell) == expected


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("acme", "no dot"),
        ("acme_corp.com", "not a valid domain"),
        ("-acme.com", "not a valid domain"),
        ("10.0.0.1", "IP address"),
        ("xn--zz.com", "not a valid domain"),
        ("gmail.com", "public mail provider"),
        ("", "empty"),
    ],
)
def test_bad_account_domain(cell: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        account_domain(cell)


def test_hostname_length() -> None:
    with pytest.raises(ValueError, match="too long"):
        hostname(".".join(["a" * 60] * 5))


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("Jane.Doe@ACME.com", "jane.doe@acme.com"),
        ("mailto:jane@acme.com", "jane@acme.com"),
        ("jane@xn--bcher-kva.de", "jane@bücher.de"),
        ("Jane@Bücher.DE", "jane@bücher.de"),
    ],
)
def test_email_address(cell: str, expected: str) -> None:
    assert email_address(cell) == expected


@pytest.mark.parametrize("cell", ["jane", "jane@acme", "a@b@acme.com", "@acme.com", "ja ne@acme.com", "j@a..com"])
def test_bad_email_address(cell: str) -> None:
    with pytest.raises(ValueError, match="not an email address"):
        email_address(cell)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("", None),
        ("Jane Doe (Jane@Acme.com)", "jane@acme.com"),
        ("Jane Doe <jane@acme.com>", "jane@acme.com"),
        ("SMTP:jane@acme.com", "jane@acme.com"),
        ("/o=ExchangeLabs/ou=Exchange Administrative Group/cn=Recipients/cn=jane", None),
        ("Jane Doe (/O=CONTOSO/OU=FIRST/CN=RECIPIENTS/CN=JANE)", None),
    ],
)
def test_outlook_email(cell: str, expected: str | None) -> None:
    assert outlook_email(cell) == expected


def test_names_and_lists() -> None:
    assert name_key("  ACME   Corp ") == "acme corp"
    assert split_list(" a.com; ;b.com;") == ["a.com", "b.com"]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("", None), ("1200.5", Decimal("1200.50")), ("1,200.50", Decimal("1200.50")), ("1,234,567", Decimal("1234567"))],
)
def test_amount(cell: str, expected: Decimal | None) -> None:
    assert amount(cell) == expected


@pytest.mark.parametrize("cell", ["12,00", "1.200,50", "-5", "1.234", "abc", "1e3", "9999999999999"])
def test_bad_amount(cell: str) -> None:
    with pytest.raises(ValueError, match="amount"):
        amount(cell)


def test_dates() -> None:
    assert day("") is None
    assert day("2025-03-04") == date(2025, 3, 4)
    assert day("4.3.2025") == date(2025, 3, 4)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        day("03/04/2025")
    with pytest.raises(ValueError, match="does not exist"):
        day("2025-02-30")


def test_phone_keeps_raw_and_e164() -> None:
    item = phone("work", " (202) 555-0123 ", "US")
    assert (item.kind, item.raw, item.e164) == ("work", "(202) 555-0123", "+12025550123")
    assert phone("home", "030 1234567", "DE").e164 == "+49301234567"
    assert phone("other", "ask reception", "US").e164 is None

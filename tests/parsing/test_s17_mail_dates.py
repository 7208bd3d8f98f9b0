"""Edge dates of mail (audit 17a F11): a year is read as written (RFC 5322 §4.3 for two and three digits), and
an impossible or unparsable Date falls back to the newest Received header's date (then, in the pipeline, the
fetch time) instead of becoming a wrong year."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sync_service.parsing.mail_dates import mail_date, received_date
from sync_service.parsing.mime import parse_headers

RECEIVED = "Received: from mx.acme.example by mx.northwind.example; Tue, 24 Nov 2026 10:00:00 +0100"


def _headers(*lines: str) -> bytes:
    return ("\r\n".join([*lines, "From: bob@acme.example", "Subject: s"]) + "\r\n\r\nbody").encode()


@pytest.mark.parametrize(
    ("value", "year"),
    [
        ("Mon, 23 Nov 2026 10:00:00 +0000", 2026),
        ("Wed, 1 Jan 49 10:00:00 +0000", 2049),  # two digits: 00-49 → 20xx
        ("Fri, 1 Jan 99 10:00:00 +0000", 1999),  # 50-99 → 19xx
        ("Mon, 23 Nov 126 10:00:00 +0000", 2026),  # three digits: + 1900
        ("Thu, 1 Jan 1970 00:00:00 +0000", 1970),
    ],
)
def test_the_year_is_read_as_written(value: str, year: int) -> None:
    found = mail_date(value)
    assert found is not None and found.year == year


@pytest.mark.parametrize(
    "value",
    [
        "Mon, 1 Jan 0001 00:00:00 +0000",  # was read as 2001
        "Sat, 1 Jan 55 00:00:00 +0000",  # 1955: before any real mail (Python alone reads 2055)
        "Wed, 31 Dec 1969 23:59:59 +0000",
        "Fri, 31 Dec 9999 23:59:59 -1200",  # past 9999 in UTC
        "Mon, 23 Nov 99999999999999999999 10:00:00 +0000",
        "yesterday-ish 99:99 +9999",
        "",
    ],
)
def test_impossible_or_unparsable_dates_are_none(value: str) -> None:
    assert mail_date(value) is None


def test_a_bad_date_falls_back_to_the_newest_received_date() -> None:
    older = "Received: from a by b; Mon, 2 Nov 2026 10:00:00 +0000"
    parsed = parse_headers(_headers(RECEIVED, older, "Date: Mon, 1 Jan 0001 00:00:00 +0000"))
    assert parsed.date == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert parse_headers(_headers(RECEIVED)).date == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # no Date at all
    assert parse_headers(_headers("Date: Fri, 31 Dec 9999 23:59:59 -1200")).date is None  # → the fetch time


def test_a_good_date_wins_over_received() -> None:
    parsed = parse_headers(_headers(RECEIVED, "Date: Mon, 23 Nov 2026 10:00:00 +0000"))
    assert parsed.date == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def test_received_without_a_usable_date_is_skipped() -> None:
    assert received_date(["from a by b", "from c by d; garbage", f"x; {'Mon, 2 Nov 2026 10:00:00 +0000'}"]) == (
        datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    )

"""event_activity_type / event_phone_numbers: SPEC §4 call-or-meeting rules and phone numbers for §3.8."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sync_service.parsing.classify import event_activity_type, event_phone_numbers
from sync_service.parsing.ical import parse_calendar
from sync_service.values import CalendarEvent, SyncWindow

START = datetime(2024, 1, 1, 9, tzinfo=UTC)
DATA = Path(__file__).resolve().parents[1] / "data" / "calendar"


def event(summary: str = "Review", location: str = "", categories: tuple[str, ...] = (), description: str = ""):
    return CalendarEvent(
        uid="u",
        recurrence_id=None,
        summary=summary,
        start=START,
        end=START,
        location=location,
        categories=categories,
        description=description,
    )


@pytest.mark.parametrize(
    "summary",
    ["Call with ACME", "call with acme", "Phone: Bob", "CALL - follow up", "Phone call Contoso", "Call"],
)
def test_summary_starting_with_call_or_phone_is_a_call(summary: str) -> None:
    assert event_activity_type(event(summary)) == "call"


@pytest.mark.parametrize(
    "summary",
    ["Callisto review", "Phoneix workshop", "Recall planning", "Conference call prep", "Meeting", "", "Calls"],
)
def test_other_summaries_are_meetings(summary: str) -> None:
    assert event_activity_type(event(summary)) == "meeting"


@pytest.mark.parametrize("category", ["Call", "phone call", "Phone Call", " CALL ", "Phone", "Telephone call"])
def test_call_category_makes_a_call(category: str) -> None:
    assert event_activity_type(event(categories=("Customer", category))) == "call"


@pytest.mark.parametrize("category", ["Callback list", "Customer", "Calls to make later"])
def test_other_categories_do_not(category: str) -> None:
    assert event_activity_type(event(categories=(category,))) == "meeting"


@pytest.mark.parametrize(
    "location",
    ["tel:+1-555-123-4567", "TEL:+4930123456", "+49 30 1234567", "+1 (425) 555-0100", "0049 30 1234567",
     "(425) 555-0100", "030 1234567", "+1 425 555 0100 ext. 12"],
)  # fmt: skip
def test_phone_number_or_tel_uri_location_is_a_call(location: str) -> None:
    assert event_activity_type(event(location=location)) == "call"


@pytest.mark.parametrize(
    "location",
    ["Room 101", "Berlin Office, Room 4.12", "2024-01-15", "12", "https://teams.example/meet/123456789",
     "Dial-in +49 30 1234567 then Room 3", "+1 2", ""],
)  # fmt: skip
def test_other_locations_are_meetings(location: str) -> None:
    assert event_activity_type(event(location=location)) == "meeting"


def test_phone_numbers_from_tel_uris_and_location() -> None:
    assert event_phone_numbers(event(location="tel:+1-555-123-4567")) == ("+1-555-123-4567",)
    assert event_phone_numbers(event(location="+49 30 1234567")) == ("+49 30 1234567",)
    assert event_phone_numbers(
        event(location="+49 30 1234567", description="Backup: tel:+49-30-7654321;ext=5\nor tel:+49-30-7654321")
    ) == ("+49 30 1234567", "+49-30-7654321")  # fmt: skip
    assert event_phone_numbers(event(location="Bridge +1 415 555 0100, PIN 1234")) == ("+1 415 555 0100",)
    assert event_phone_numbers(event(location="Room 101", description="call me at 555")) == ()


def test_fixture_events_classified() -> None:
    parsed = parse_calendar((DATA / "tel_location.ics").read_bytes(), SyncWindow.around(START))
    kinds = {e.uid: event_activity_type(e) for e in parsed.events}
    assert kinds == {
        "tel-uri@seller.example": "call",
        "plain-number@seller.example": "call",
        "room@seller.example": "meeting",
    }
    numbers = {e.uid: event_phone_numbers(e) for e in parsed.events}
    assert numbers["tel-uri@seller.example"] == ("+1-555-123-4567",)
    assert numbers["plain-number@seller.example"] == ("+49 30 1234567", "+49-30-7654321")
    assert numbers["room@seller.example"] == ()

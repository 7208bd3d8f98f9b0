"""Every real-world calendar of the shared corpus goes through parse_calendar (SPEC §6, corpus README).

Only ParseError may escape; every returned event has aware UTC times with start <= end. The corpus is
read in place (never copied) and the test is skipped when it is absent. A small hypothesis test mutates
fixture bytes and checks the same contract.
"""

from __future__ import annotations

import os
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync_service.errors import ParseError
from sync_service.parsing.ical import parse_calendar
from sync_service.values import ParsedCalendar, SyncWindow

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("CRM_SHARED_CORPUS") or REPO_ROOT / ".." / "shared" / "corpus") / "calendar"
FILES = sorted(CORPUS.rglob("*.ics")) if CORPUS.is_dir() else []
FIXTURES = Path(__file__).resolve().parents[1] / "data" / "calendar"
# The default window around 2024 and a wide one (30 years back), so that old test calendars expand too.
WINDOWS = [
    SyncWindow.around(datetime(2024, 1, 1, tzinfo=UTC)),
    SyncWindow(datetime(1995, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
]

pytestmark = pytest.mark.skipif(not FILES, reason=f"shared calendar corpus not found at {CORPUS}")


def parse_or_none(raw: bytes, window: SyncWindow) -> ParsedCalendar | None:
    """The parsed calendar, or None for a ParseError; any other exception fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # icalendar warns when it guesses a vendor-prefixed TZID
        try:
            return parse_calendar(raw, window)
        except ParseError as exc:
            assert str(exc) and "\n" not in str(exc)
            return None


def assert_sane(parsed: ParsedCalendar) -> None:
    for event in parsed.events:
        assert event.start.utcoffset() == timedelta(0) and event.end.utcoffset() == timedelta(0)
        assert event.start <= event.end, event
        assert event.uid
    assert all("\n" not in problem for problem in parsed.problems)


@pytest.mark.parametrize("window", WINDOWS, ids=["default-window", "wide-window"])
def test_whole_corpus_parses_without_unexpected_exceptions(window: SyncWindow) -> None:
    successes, failures = 0, []
    for path in FILES:
        parsed = parse_or_none(path.read_bytes(), window)
        if parsed is None:
            failures.append(path.name)
            continue
        successes += 1
        assert_sane(parsed)
    # Many icalendar fuzzing / "broken" samples are rejected on purpose; real calendars must pass.
    assert successes >= 0.7 * len(FILES), (successes, len(FILES), failures)
    nylas = [p for p in FILES if p.parent.name == "nylas"]
    assert all(parse_or_none(p.read_bytes(), window) is not None for p in nylas)


def test_corpus_has_the_expected_kinds_of_calendars() -> None:
    assert {p.parent.name for p in FILES} >= {"icalendar", "nylas", "recurring_ical_events"}
    assert len(FILES) > 100


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(p.name for p in FIXTURES.glob("*.ics"))),
    edits=st.lists(st.tuples(st.integers(min_value=0), st.binary(max_size=8)), min_size=1, max_size=6),
)
def test_mutated_fixtures_only_raise_parse_error(name: str, edits: list[tuple[int, bytes]]) -> None:
    raw = bytearray((FIXTURES / name).read_bytes())
    for position, replacement in edits:
        at = position % (len(raw) + 1)
        raw[at : at + len(replacement)] = replacement
    parsed = parse_or_none(bytes(raw), WINDOWS[0])
    if parsed is not None:
        assert_sane(parsed)

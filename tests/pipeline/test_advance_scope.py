"""Which synced activities a batch hands to the process engine (``pipeline.advance.AdvanceScope``)."""

from __future__ import annotations

from crm_store.seed import shipped_processes
from sync_service.pipeline.advance import AdvanceScope
from sync_service.process.definition import parse_process

LEADS = tuple(p for p in map(parse_process, shipped_processes()) if p.applies_to == "lead")
SCOPE = AdvanceScope(
    opportunities=frozenset({1}),
    max_opportunity=5,
    leads=frozenset({10}),  # a lead with a running process
    max_lead=20,
    starting=frozenset({11}),  # a lead in "Initial Lead", whose process starts with its first meeting or call
    starters=LEADS,
)
EMAIL = ("email", "inbound", "Hello")
MEETING = ("meeting", None, "Intro")


def test_running_processes_and_records_made_since_the_batch_began_always_go_to_the_engine() -> None:
    assert SCOPE.may_advance(1, None, EMAIL)
    assert SCOPE.may_advance(6, None, EMAIL)  # newer than the scope: unknown, so asked
    assert SCOPE.may_advance(None, 10, EMAIL)
    assert SCOPE.may_advance(None, 21, EMAIL)


def test_a_starting_lead_goes_to_the_engine_only_with_an_activity_a_step_of_its_process_takes() -> None:
    # The shipped lead process starts with a meeting or a call: an email cannot start it.
    assert SCOPE.may_advance(None, 11, MEETING)
    assert SCOPE.may_advance(None, 11, ("call", "outbound", ""))
    assert not SCOPE.may_advance(None, 11, EMAIL)
    assert SCOPE.may_advance(None, 11)  # what the activity is not known: asked


def test_inert_records_are_skipped() -> None:
    assert not SCOPE.may_advance(2, None, MEETING)  # an opportunity without a process
    assert not SCOPE.may_advance(None, 12, MEETING)  # a lead neither running nor starting
    assert not SCOPE.may_advance(None, None, MEETING)

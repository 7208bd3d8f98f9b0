"""The pure engine, walked event by event on the shipped definitions (no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from crm_store.seed import shipped_processes
from sync_service.process.definition import Process, parse_process
from sync_service.process.engine import handle, open_steps
from sync_service.process.errors import ProcessError
from sync_service.process.model import (
    CancelActivity,
    CancelByHand,
    ChooseStage,
    Closing,
    CompleteActivity,
    CompleteByHand,
    CreatePlannedActivity,
    ProcessState,
    Start,
)
from tests.support.process_fake import FakeSubject

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def shipped(name: str) -> Process:
    return next(parse_process(d) for d in shipped_processes() if d["name"] == name)


SALE = shipped("Corporate sale")
LEADS = shipped("Lead management")


def at(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


def sale(stage: str = "Interest verification", *, count_history: bool = True) -> FakeSubject:
    subject = FakeSubject(SALE, stage)
    subject.send(Start(T0, stage=stage, count_history=count_history))
    return subject


# -- starting ------------------------------------------------------------------------------------------------


def test_start_enters_the_start_stage_and_plans_its_first_step_with_hints() -> None:
    subject = FakeSubject(SALE)
    transition = subject.send(Start(T0))
    assert transition.state.stage == "Interest verification" and transition.state.running
    assert transition.state.current_step == "interest-verification.call"
    assert transition.state.since == T0  # a new opportunity: only what happens from now on counts
    created = [e for e in transition.effects if isinstance(e, CreatePlannedActivity)]
    assert [(c.step, c.type, c.title) for c in created] == [("interest-verification.call", "call", "Call")]
    assert "Is there a real need?" in created[0].hints
    assert subject.rows() == [("Interest verification", None, None, False)]


def test_start_for_an_existing_opportunity_begins_at_its_stage_and_counts_its_history() -> None:
    subject = sale("Presentation")
    assert subject.state.stage == "Presentation" and subject.state.since is None
    assert subject.planned() == [("presentation.prepare", "process")]


@pytest.mark.parametrize(
    ("state", "event", "message"),
    [
        (ProcessState("Qualification", running=True), Start(T0), "already running"),
        (ProcessState("Closed won", status="won"), Start(T0, stage="Closed won"), "closed stage"),
        (ProcessState("Nowhere"), Start(T0, stage="Nowhere"), "not a stage of Corporate sale"),
    ],
)
def test_start_refusals(state: ProcessState, event: Start, message: str) -> None:
    with pytest.raises(ProcessError, match=message):
        handle(SALE, state, event)


# -- automatic advancement -------------------------------------------------------------------------------------


def test_a_completed_call_with_a_participant_completes_the_step_and_the_stage() -> None:
    subject = sale()
    placeholder = subject.placeholder("interest-verification.call")
    subject.synced(1, "call", "completed", at(1))
    assert placeholder not in subject.activities  # superseded: the synced call is the planned call
    call = subject.activities[1]
    assert (call.step, call.result) == ("interest-verification.call", "Interest confirmed")
    assert subject.state.stage == "Qualification" and subject.state.current_step == "qualification.qualify"
    assert subject.state.since == at(1)
    assert subject.rows()[1:] == [
        ("Interest verification", "interest-verification.call", "Interest confirmed", True),
        ("Qualification", None, None, True),
    ]
    assert [h.activity_id for h in subject.history[1:]] == [1, 1]
    assert subject.planned() == [("qualification.qualify", "process")]


@pytest.mark.parametrize(
    ("type_", "facts"),
    [
        ("call", {"contact_ids": frozenset({8})}),  # no participant of the opportunity
        ("email", {}),  # wrong type
        ("task", {}),
    ],
)
def test_activities_that_do_not_satisfy_change_nothing(type_: str, facts: dict) -> None:
    subject = sale()
    transition = subject.synced(1, type_, "completed", at(1), **facts)
    assert transition.effects == () and subject.state.stage == "Interest verification"


def test_the_same_activity_never_completes_a_step_twice() -> None:
    subject = sale()
    subject.synced(1, "call", "completed", at(1))
    assert subject.resend(1).effects == ()
    assert subject.state.stage == "Qualification" and len(subject.history) == 3


def test_activities_older_than_the_last_progress_do_not_count() -> None:
    subject = sale()
    subject.synced(1, "call", "completed", at(10))
    assert subject.synced(2, "meeting", "completed", at(5)).effects == ()  # an old meeting seen again
    assert subject.state.stage == "Qualification"
    subject.synced(3, "meeting", "completed", at(11))
    assert subject.state.stage == "Needs analysis"


def test_a_new_opportunity_ignores_what_happened_before_it_started() -> None:
    subject = sale(count_history=False)
    assert subject.synced(1, "call", "completed", T0 - timedelta(days=1)).effects == ()
    subject.synced(2, "call", "completed", at(1))
    assert subject.state.stage == "Qualification"


def test_a_future_meeting_is_linked_and_completes_the_step_when_it_ends() -> None:
    subject = sale("Presentation")
    transition = subject.synced(1, "meeting", "planned", at(48))
    assert subject.activities[1].step == "presentation.conduct"
    assert not any(isinstance(e, CompleteActivity) for e in transition.effects)
    assert subject.state.current_step == "presentation.prepare"  # still open
    assert subject.resend(1).effects == ()  # synced again unchanged: nothing to do
    subject.activities[1].status = "completed"
    subject.resend(1)
    assert subject.state.stage == "Id. decision makers"
    assert subject.rows()[1:4] == [
        ("Presentation", "presentation.prepare", "Done", True),  # implied: a held presentation was prepared
        ("Presentation", "presentation.conduct", "Held", True),
        ("Id. decision makers", None, None, True),
    ]
    done = [a for a in subject.activities.values() if a.origin == "process" and a.status == "completed"]
    assert [(a.step, a.result) for a in done] == [("presentation.prepare", "Done")]


def test_a_linked_meeting_counts_even_if_it_ends_before_a_later_manual_step() -> None:
    subject = sale("Presentation")
    subject.synced(1, "meeting", "planned", at(2))
    subject.send(CompleteByHand(subject.placeholder("presentation.prepare"), at(5)))  # ticked off after the meeting
    subject.activities[1].status = "completed"
    subject.resend(1)  # the periodic job completes it later
    assert subject.state.stage == "Id. decision makers"


def test_a_cancelled_linked_meeting_cancels_the_step_and_ends_the_stage_early() -> None:
    subject = sale("Presentation")
    subject.synced(1, "meeting", "planned", at(48))
    prepare = subject.placeholder("presentation.prepare")
    subject.activities[1].status = "cancelled"
    subject.resend(1)
    assert subject.state.stage == "Presentation" and subject.state.current_step is None
    assert subject.activities[prepare].status == "cancelled"
    assert subject.planned() == []
    assert subject.rows()[1:] == [
        ("Presentation", "presentation.conduct", "Cancelled", True),
        ("Presentation", None, "Stage ended early", True),
    ]
    assert subject.synced(2, "meeting", "completed", at(60)).effects == ()  # no step is open any more


def test_a_cancelled_activity_that_served_no_step_changes_nothing() -> None:
    subject = sale("Presentation")
    assert subject.synced(1, "meeting", "cancelled", at(48)).effects == ()


def test_a_linked_meeting_that_no_longer_satisfies_is_unlinked() -> None:
    subject = sale("Presentation")
    subject.synced(1, "meeting", "planned", at(48))
    subject.synced(1, "meeting", "planned", at(48), contact_ids=frozenset({99}))  # the participant was removed
    assert subject.activities[1].step is None


OWNER, OTHER_REP = "alice@northwind-sales.example", "bob@northwind-sales.example"


def owned_by(subject: FakeSubject, owner: str) -> FakeSubject:
    subject.state = replace(subject.state, parties=replace(subject.state.parties, owner=owner))
    return subject


def test_a_later_step_wins_and_completes_the_earlier_ones() -> None:
    subject = owned_by(sale("Proposal submission"), OWNER)
    subject.synced(1, "email", "completed", at(1), direction="outbound", has_attachment=True, sender=OWNER)
    assert subject.rows()[1:3] == [
        ("Proposal submission", "proposal.prepare", "Done", True),
        ("Proposal submission", "proposal.submit", "Submitted", True),
    ]
    assert subject.state.stage == "Negotiations"


def test_another_reps_proposal_email_submits_nothing() -> None:
    """SPEC §2: "Submit the proposal" completes when the *owner* sends the contact an email with an attachment."""
    proposal = {"direction": "outbound", "has_attachment": True}
    subject = owned_by(sale("Proposal submission"), OWNER)
    transition = subject.synced(1, "email", "completed", at(1), sender=OTHER_REP, **proposal)
    assert transition.effects == () and subject.state.current_step == "proposal.prepare"
    unowned = sale("Proposal submission")  # an opportunity without an owner: nobody's email is the owner's
    assert unowned.synced(1, "email", "completed", at(1), sender=OWNER, **proposal).effects == ()


def test_the_optional_step_is_skipped_when_the_required_one_completes() -> None:
    subject = sale("Negotiations")
    assert sorted(subject.planned()) == [("negotiations.negotiate", "process"), ("negotiations.tactics", "process")]
    tactics = subject.placeholder("negotiations.tactics")
    subject.synced(1, "meeting", "completed", at(1))
    assert (subject.activities[tactics].status, subject.activities[tactics].result) == ("cancelled", "Skipped")
    assert subject.state.stage == "Contracting"


def test_the_last_stage_done_enters_closed_won() -> None:
    subject = sale("Contracting")
    subject.synced(
        1, "email", "completed", at(1), direction="inbound", has_attachment=True, subject="Signed contract attached"
    )
    assert (subject.state.stage, subject.state.status, subject.state.current_step) == ("Closed won", "won", None)
    assert subject.rows()[-1] == ("Closed won", None, None, True)
    assert subject.synced(2, "meeting", "completed", at(2)).effects == ()  # closed: nothing moves it


# -- by hand ---------------------------------------------------------------------------------------------------


def test_redial_later_adds_the_call_again() -> None:
    subject = sale()
    first = subject.placeholder("interest-verification.call")
    subject.send(CompleteByHand(first, at(1), "Redial later"))
    second = subject.placeholder("interest-verification.call")
    assert second != first and subject.activities[first].result == "Redial later"
    assert subject.state.stage == "Interest verification" and subject.state.since == at(1)
    subject.send(CompleteByHand(second, at(2)))  # default result
    assert subject.rows()[1:] == [
        ("Interest verification", "interest-verification.call", "Redial later", False),
        ("Interest verification", "interest-verification.call", "Interest confirmed", False),
        ("Qualification", None, None, False),
    ]


def test_postponing_the_proposal_returns_to_preparing() -> None:
    subject = sale("Proposal submission")
    subject.send(CompleteByHand(subject.placeholder("proposal.prepare"), at(1)))
    subject.send(CompleteByHand(subject.placeholder("proposal.submit"), at(2), "Postponed"))
    assert subject.state.current_step == "proposal.prepare"
    assert subject.planned() == [("proposal.prepare", "process")]


def test_a_result_the_step_does_not_allow_is_refused() -> None:
    subject = sale()
    with pytest.raises(ProcessError, match="'Held' is not a result of step 'Call'"):
        subject.send(CompleteByHand(subject.placeholder("interest-verification.call"), at(1), "Held"))


def test_no_interest_ends_the_stage_and_the_rep_chooses() -> None:
    subject = sale()
    subject.send(CompleteByHand(subject.placeholder("interest-verification.call"), at(1), "No interest"))
    assert subject.state.current_step is None and subject.state.stage == "Interest verification"
    assert subject.rows()[-1] == ("Interest verification", None, "Stage ended early", False)


def test_cancelling_a_step_activity_by_hand_ends_the_stage_early() -> None:
    subject = sale("Needs analysis")
    collect = subject.placeholder("needs-analysis.collect")
    subject.send(CancelByHand(collect, at(1)))
    assert (subject.activities[collect].status, subject.state.current_step) == ("cancelled", None)
    assert subject.planned() == []


def test_cancelling_an_optional_step_only_skips_it() -> None:
    subject = sale("Negotiations")
    subject.send(CancelByHand(subject.placeholder("negotiations.tactics"), at(1)))
    assert subject.state.current_step == "negotiations.negotiate"
    assert subject.planned() == [("negotiations.negotiate", "process")]  # no second placeholder


def test_completing_an_activity_of_no_step_just_completes_it() -> None:
    subject = sale()
    transition = handle(SALE, subject.state, CompleteByHand(555, at(1), "anything"))
    assert transition.effects == (CompleteActivity(555, "anything"),) and transition.state == subject.state
    transition = handle(SALE, subject.state, CancelByHand(555, at(1)))
    assert transition.effects == (CancelActivity(555, None),)


# -- choosing stages -------------------------------------------------------------------------------------------


def test_choosing_a_stage_cancels_the_left_stage_and_starts_the_new_one() -> None:
    subject = sale("Presentation")
    prepare = subject.placeholder("presentation.prepare")
    subject.synced(1, "meeting", "planned", at(48))
    transition = subject.send(ChooseStage("proposal submission", at(2)))
    assert CancelActivity(prepare, "Stage left") in transition.effects
    assert subject.activities[1].step is None  # the future meeting no longer serves a step
    assert subject.state.stage == "Proposal submission" and subject.state.since == at(2)
    assert subject.planned() == [(None, "sync"), ("proposal.prepare", "process")]
    assert subject.rows()[-1] == ("Proposal submission", None, None, False)


def test_a_stage_may_be_run_again() -> None:
    subject = sale("Presentation")
    first = subject.placeholder("presentation.prepare")
    subject.send(ChooseStage("Presentation", at(1)))
    assert subject.activities[first].status == "cancelled"
    assert subject.placeholder("presentation.prepare") != first


def test_closed_lost_needs_a_reason_and_may_name_the_competitor() -> None:
    subject = sale("Negotiations")
    with pytest.raises(ProcessError, match="'Closed lost' requires a lost reason"):
        subject.send(ChooseStage("Closed lost", at(1)))
    with pytest.raises(ProcessError, match="'Closed won' does not take a competitor"):
        subject.send(ChooseStage("Closed won", at(1), Closing(competitor="Initech")))
    with pytest.raises(ProcessError, match="'Qualification' does not take a lost reason"):
        subject.send(ChooseStage("Qualification", at(1), Closing(lost_reason="Price")))
    subject.send(ChooseStage("Closed lost", at(1), Closing(lost_reason="Price", competitor="Initech")))
    assert (subject.state.stage, subject.state.status) == ("Closed lost", "lost")
    assert subject.closing == Closing(lost_reason="Price", competitor="Initech")
    assert subject.planned() == [] and subject.rows()[-1] == ("Closed lost", None, "Price", False)
    subject.send(ChooseStage("Negotiations", at(2)))  # reopened
    assert subject.state.status == "open" and subject.closing == Closing()


def test_choosing_a_stage_without_a_running_process_only_records_it() -> None:
    subject = FakeSubject(SALE, "Qualification")
    transition = subject.send(ChooseStage("Closed won", at(1), Closing(won_reason="Price")))
    assert (transition.state.stage, transition.state.status, transition.state.running) == ("Closed won", "won", False)
    assert not any(isinstance(e, CreatePlannedActivity) for e in transition.effects)


def test_an_unknown_stage_names_the_known_ones() -> None:
    with pytest.raises(ProcessError, match="'Lunch' is not a stage of Corporate sale \\(one of: Interest"):
        sale().send(ChooseStage("Lunch", at(1)))


# -- the lead process ------------------------------------------------------------------------------------------


def lead_subject() -> FakeSubject:
    subject = FakeSubject(LEADS, participants=frozenset(), lead_id=3)
    subject.send(Start(T0, count_history=True, automatic=True))
    return subject


def test_a_stage_without_steps_is_passed_through() -> None:
    subject = lead_subject()
    assert subject.state.stage == "Initial meeting / phone interview"
    assert [r[0] for r in subject.rows()] == ["Register prospect", "Initial meeting / phone interview"]


def test_a_meeting_with_the_lead_makes_it_a_prospect_and_awaiting_sale_follows() -> None:
    subject = lead_subject()
    subject.synced(1, "meeting", "completed", at(1), contact_ids=frozenset(), lead_id=3)
    assert subject.lead_statuses == ["Prospect"] and subject.state.stage == "Needs analysis"
    subject.synced(2, "call", "completed", at(2), contact_ids=frozenset(), lead_id=3)
    assert subject.lead_statuses == ["Prospect", "Awaiting sale"]
    assert subject.state.stage == "Pre-sales resource request"


def test_a_meeting_with_another_lead_does_nothing() -> None:
    subject = lead_subject()
    assert subject.synced(1, "meeting", "completed", at(1), lead_id=4).effects == ()


def test_bad_lead_ends_the_stage() -> None:
    subject = lead_subject()
    subject.send(CompleteByHand(subject.placeholder("lead.initial-contact"), at(1), "Bad Lead"))
    assert subject.lead_statuses == ["Bad Lead"] and subject.state.current_step is None


# -- definitions the shipped ones do not exercise --------------------------------------------------------------


def _tiny(**overrides: object) -> Process:
    data: dict = {
        "name": "Tiny",
        "applies_to": "opportunity",
        "start_stage": "A",
        "stages": [{"name": "A", "next": ["B"]}, {"name": "B", "next": ["A"]}],
        "terminal_stages": [{"name": "Lost", "status": "lost", "requires": ["lost_reason"]}],
    }
    data.update(overrides)
    return parse_process(data)


def test_stages_without_steps_never_loop() -> None:
    transition = handle(_tiny(), ProcessState(""), Start(T0))
    assert transition.state.stage == "B" and transition.state.current_step is None


def test_a_next_stage_that_needs_a_reason_waits_for_a_person() -> None:
    process = _tiny(stages=[{"name": "A", "next": ["Lost"]}])
    transition = handle(process, ProcessState(""), Start(T0))
    assert (transition.state.stage, transition.state.status) == ("A", "open")


def test_open_steps_run_to_the_first_required_step() -> None:
    keys = [s.key for s in open_steps(SALE, "Negotiations", "negotiations.tactics")]
    assert keys == ["negotiations.tactics", "negotiations.negotiate"]
    assert open_steps(SALE, "Negotiations", None) == ()

"""Does a synced activity satisfy a step's ``satisfied_by`` rule? Pure: plain facts in, a yes / no out.

A rule is a conjunction: the activity's type is one of ``types``; its ``direction`` matches when the rule
names one; one of the ``keywords`` occurs in its subject (case-insensitive) when the rule lists any; it has
an attachment when ``has_attachment``; one of its contacts is a participant of the opportunity when
``with_participant``; it is linked to the process's lead when ``with_lead``; its sender (an email's From,
a meeting's organiser) is the owner of the opportunity or lead when ``from_owner`` — compared by address,
case-insensitively; an unknown sender or owner never matches. The activity's status and time are the engine's
business, not this module's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sync_service.process.definition import Process, SatisfiedBy


@dataclass(frozen=True)
class ActivityFacts:
    """What the engine knows about one activity."""

    id: int
    type: str  # email | meeting | call | task
    status: str  # planned | completed | cancelled
    at: datetime | None = None  # when it happened (its end, else its start)
    direction: str | None = None
    subject: str = ""
    has_attachment: bool = False
    contact_ids: frozenset[int] = frozenset()
    lead_id: int | None = None
    process_step: str | None = None  # the step it is linked to, if any
    sender: str | None = None  # who sent the email / organised the meeting (an address); None: unknown


@dataclass(frozen=True)
class Parties:
    """Who the process is about: the opportunity's participants (contact ids) and its lead."""

    participant_ids: frozenset[int] = frozenset()
    lead_id: int | None = None
    owner: str | None = None  # the owner's (a rep's) address; None: no owner


def may_satisfy(process: Process, activity_type: str, direction: str | None, subject: str) -> bool:
    """Whether some step of ``process`` accepts an activity of this type, direction and subject: what
    ``satisfies`` checks first, known without reading the activity's links or the process's state. False means
    no step of the process can be satisfied by the activity."""
    rules = (step.satisfied_by for stage in process.stages for step in stage.steps)
    return any(rule is not None and _takes(rule, activity_type, direction, subject) for rule in rules)


def _takes(rule: SatisfiedBy, activity_type: str, direction: str | None, subject: str) -> bool:
    """The rule's conditions on the activity itself: its type, its direction, a keyword in its subject."""
    if activity_type not in rule.types:
        return False
    if rule.direction is not None and direction != rule.direction:
        return False
    folded = subject.casefold()
    return not rule.keywords or any(word.casefold() in folded for word in rule.keywords)


def satisfies(rule: SatisfiedBy, activity: ActivityFacts, parties: Parties) -> bool:
    if not _takes(rule, activity.type, activity.direction, activity.subject):
        return False
    if rule.has_attachment and not activity.has_attachment:
        return False
    if rule.with_participant and not (activity.contact_ids & parties.participant_ids):
        return False
    if rule.from_owner and not _same_address(activity.sender, parties.owner):
        return False
    return not (rule.with_lead and (parties.lead_id is None or activity.lead_id != parties.lead_id))


def _same_address(one: str | None, other: str | None) -> bool:
    if not one or not other:
        return False
    return one.strip().casefold() == other.strip().casefold()

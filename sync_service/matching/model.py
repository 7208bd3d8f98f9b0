"""Plain data in and out of the matcher: the item's facts, the candidate index, the decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from sync_service.values import Address

ItemType = Literal["email", "meeting", "call"]
Direction = Literal["inbound", "outbound"]
AutoCreatePolicy = Literal["none", "account-domains", "all"]

# Skip reasons, as counted in the sync statistics and shown by `match explain`.
SKIP_INTERNAL = "internal-only"
SKIP_AUTOMATED = "automated"
SKIP_NEVER_LOG = "never-log"
SKIP_UNMATCHED = "unmatched"

# Which rule of SPEC §3.4 chose the opportunity.
OPP_THREAD = "thread"
OPP_TOKEN = "token"
OPP_PARTICIPANT = "participant"
OPP_ACCOUNT = "account"
OPP_KEPT = "kept"  # re-matching kept the opportunity an item was linked to before (``overrides.py``)
RULE_LETTERS = {OPP_THREAD: "a", OPP_TOKEN: "b", OPP_PARTICIPANT: "c", OPP_ACCOUNT: "d"}  # as SPEC §3.4 names them


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """What the matcher knows of one email or calendar item."""

    kind: ItemType
    sender: Address | None  # From of an email, organizer of an event
    participants: tuple[Address, ...]  # recipients / attendees other than the sender
    reply_to: tuple[Address, ...] = ()  # Reply-To of an email when it differs from From: also a participant
    subject: str = ""
    message_id: str | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    conversation_id: str | None = None
    automated_reason: str | None = None  # set by the header parser for bulk / auto-submitted / auto-reply
    phones: tuple[str, ...] = ()  # raw phone numbers of a call (location, tel: URIs)
    mailbox_owner: str | None = None  # email of the rep whose mailbox saw the item


class DomainFacts(NamedTuple):
    """What one email domain is to the matcher; cached per index (``resolve.domain_facts``)."""

    internal: bool  # an internal domain or a subdomain of one (and no public provider)
    never_log: str | None  # the never-log entry covering it (the domain or a parent)
    public: bool  # a public mail provider
    account_id: int | None  # the account owning it or its nearest parent
    matched_domain: str | None  # that owned (parent) domain


@dataclass(slots=True)
class CandidateIndex:
    """Everything matching looks up, as dictionaries: each lookup is O(1) (domains: O(labels)).

    Keys are lower-case emails / domains, E.164 phone numbers, message ids without angle brackets.
    Built by ``matching.load.build_index`` from the database, or directly in tests.
    """

    internal_domains: frozenset[str] = frozenset()
    user_emails: dict[str, int] = field(default_factory=dict)  # rep email → user id
    never_log: frozenset[str] = frozenset()  # addresses and domains
    contacts_by_email: dict[str, tuple[int, ...]] = field(default_factory=dict)
    contacts_by_phone: dict[str, tuple[int, ...]] = field(default_factory=dict)
    contact_account: dict[int, int | None] = field(default_factory=dict)
    leads_by_email: dict[str, tuple[int, ...]] = field(default_factory=dict)
    leads_by_phone: dict[str, tuple[int, ...]] = field(default_factory=dict)
    account_by_domain: dict[str, int] = field(default_factory=dict)
    open_opps_by_contact: dict[int, tuple[int, ...]] = field(default_factory=dict)
    open_opps_by_account: dict[int, tuple[int, ...]] = field(default_factory=dict)
    open_opportunities: frozenset[int] = frozenset()
    opportunity_account: dict[int, int | None] = field(default_factory=dict)
    thread_opportunity: dict[str, int] = field(default_factory=dict)  # message id / conversation id → opp
    default_region: str = "US"  # for phone numbers written without a country code
    # Filled as domains are met (``resolve.domain_facts``): one lookup per address instead of five. Domains,
    # accounts' domains, internal domains and the never-log list never change inside a run, so entries never
    # go stale; a new run builds a new index.
    domain_cache: dict[str, DomainFacts] = field(default_factory=dict, repr=False, compare=False)

    def remember_thread(self, key: str | None, opportunity_id: int | None) -> None:
        """Record a just-linked item so that replies later in the same run follow it (rule 4a)."""
        if key and opportunity_id is not None:
            self.thread_opportunity[key] = opportunity_id


@dataclass(frozen=True, slots=True)
class LinkExclusions:
    """Links a person removed from one activity; matching never adds them back (SPEC §3.7)."""

    contacts: frozenset[int] = frozenset()
    accounts: frozenset[int] = frozenset()
    opportunities: frozenset[int] = frozenset()
    leads: frozenset[int] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.contacts or self.accounts or self.opportunities or self.leads)


@dataclass(frozen=True, slots=True)
class NewContact:
    email: str
    name: str
    account_id: int


@dataclass(frozen=True, slots=True)
class NewLead:
    email: str
    name: str
    company: str  # derived from the domain


@dataclass(frozen=True, slots=True)
class MatchDecision:
    skip_reason: str | None = None
    direction: Direction | None = None
    contact_ids: tuple[int, ...] = ()
    lead_id: int | None = None
    account_ids: tuple[int, ...] = ()
    primary_account_id: int | None = None
    opportunity_id: int | None = None
    opportunity_rule: str | None = None
    review_candidates: tuple[int, ...] = ()  # several open opportunities and no rule chose: review queue
    new_contacts: tuple[NewContact, ...] = ()
    new_leads: tuple[NewLead, ...] = ()
    explanation: tuple[str, ...] = ()  # one line per decision taken, for `crm-sync match explain`

    @property
    def skipped(self) -> bool:
        return self.skip_reason is not None

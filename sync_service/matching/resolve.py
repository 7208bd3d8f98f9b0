"""Who is this address (or phone number)? SPEC §3.2 and §3.8, one participant at a time.

An address resolves to the contacts having it (all of them when several contacts share it), else to the leads
having it, else to the account owning its domain or a parent domain. Public mail providers never resolve by
domain; a contact or lead that registered a gmail address still matches. A phone number (E.164) resolves to
contacts, then leads. Also here: whether an address is internal and whether it is on the never-log list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sync_service.matching.domains import (
    domain_candidates,
    email_domain,
    is_public_mail_domain,
    normalize_email,
)
from sync_service.matching.model import CandidateIndex, DomainFacts

ResolvedVia = Literal["contact", "lead", "domain"]


@dataclass(frozen=True, slots=True)
class Resolution:
    """What one external address or phone number resolved to."""

    key: str  # the normalised email, or the E.164 number
    via: ResolvedVia | None = None  # None: not a CRM record
    contact_ids: tuple[int, ...] = ()
    lead_ids: tuple[int, ...] = ()
    account_ids: tuple[int, ...] = ()  # the contacts' accounts, or the account owning the domain
    matched_domain: str | None = None  # the (parent) domain an account owns, when via == "domain"
    public_domain: bool = False  # the address is at a public mail provider

    @property
    def resolved(self) -> bool:
        return self.via is not None

    @property
    def account_id(self) -> int | None:
        return self.account_ids[0] if self.account_ids else None

    def describe(self) -> str:
        """``"contact 12 (account 3)"``, ``"account 3 by domain acme.com"``, ``"nothing (public …)"``."""
        if self.via == "contact":
            text = _ids("contact", self.contact_ids)
            return f"{text} ({_ids('account', self.account_ids)})" if self.account_ids else text
        if self.via == "lead":
            return _ids("lead", self.lead_ids)
        if self.via == "domain":
            return f"account {self.account_id} by domain {self.matched_domain}"
        return "nothing (public mail provider)" if self.public_domain else "nothing"


def _ids(noun: str, ids: tuple[int, ...]) -> str:
    plural = "s" if len(ids) > 1 else ""
    return f"{noun}{plural} {', '.join(str(i) for i in ids)}"


def is_internal(email: str, index: CandidateIndex) -> bool:
    """A rep's address, or an address at an internal domain or a subdomain of one.

    A public provider's domain is never internal as a whole: a rep registered as ``ann@gmail.com`` makes that
    one address internal, not every gmail correspondent.
    """
    return is_internal_key(normalize_email(email), index)


def is_internal_key(email: str, index: CandidateIndex) -> bool:
    """``is_internal`` of an address already normalised (``normalize_email``): what ``decide`` holds."""
    if email in index.user_emails:
        return True
    domain = email_domain(email)
    # The domain facts live in a table as large as the CRM's domains: ask it only when the domain or a parent
    # is in the (small) set of internal domains at all — most addresses are not.
    return under_any(domain, index.internal_domains) and domain_facts(domain, index).internal


def under_any(domain: str, names: frozenset[str]) -> bool:
    """The domain or one of its parents (any label suffix) is in ``names``: a superset of the candidates test
    of ``domain_facts`` in O(labels) lookups in a small set, without the public-suffix list."""
    if not names:
        return False
    if domain in names:
        return True
    dot = domain.find(".")
    while dot >= 0:
        if domain[dot + 1 :] in names:
            return True
        dot = domain.find(".", dot + 1)
    return False


def domain_facts(domain: str, index: CandidateIndex) -> DomainFacts:
    """Everything the matcher asks about a (normalised) domain, worked out once per index."""
    found = index.domain_cache.get(domain)
    if found is None:
        found = index.domain_cache[domain] = _domain_facts(domain, index)
    return found


def _domain_facts(domain: str, index: CandidateIndex) -> DomainFacts:
    candidates = domain_candidates(domain)
    public = is_public_mail_domain(domain)
    internal = not public and any(c in index.internal_domains for c in candidates)
    never_log = next((c for c in candidates if c in index.never_log), None)
    owned = None if public else next((c for c in candidates if c in index.account_by_domain), None)
    account = index.account_by_domain[owned] if owned is not None else None
    return DomainFacts(internal, never_log, public, account, owned)


def never_log_entry(key: str, index: CandidateIndex) -> str | None:
    """The never-log entry that covers this address (itself, its domain or a parent) or phone number."""
    if not index.never_log:
        return None
    if key in index.never_log:
        return key
    if "@" not in key:
        return None
    domain = email_domain(key)
    return domain_facts(domain, index).never_log if under_any(domain, index.never_log) else None


def resolve_address(email: str, index: CandidateIndex) -> Resolution:
    """Contact → lead → account by domain (SPEC §3.2)."""
    return resolve_key(normalize_email(email), index)


def resolve_key(email: str, index: CandidateIndex) -> Resolution:
    """``resolve_address`` of an address already normalised (``normalize_email``)."""
    contacts = index.contacts_by_email.get(email, ())
    if contacts:
        return Resolution(email, "contact", contact_ids=contacts, account_ids=_accounts_of(contacts, index))
    leads = index.leads_by_email.get(email, ())
    if leads:
        return Resolution(email, "lead", lead_ids=leads)
    domain = domain_facts(email_domain(email), index)
    if domain.public:
        return Resolution(email, public_domain=True)
    if domain.account_id is not None:
        return Resolution(email, "domain", account_ids=(domain.account_id,), matched_domain=domain.matched_domain)
    return Resolution(email)


def resolve_phone(e164: str, index: CandidateIndex) -> Resolution:
    """Contact → lead by an E.164 number (SPEC §3.8); numbers never resolve to an account."""
    contacts = index.contacts_by_phone.get(e164, ())
    if contacts:
        return Resolution(e164, "contact", contact_ids=contacts, account_ids=_accounts_of(contacts, index))
    leads = index.leads_by_phone.get(e164, ())
    if leads:
        return Resolution(e164, "lead", lead_ids=leads)
    return Resolution(e164)


def _accounts_of(contact_ids: tuple[int, ...], index: CandidateIndex) -> tuple[int, ...]:
    accounts: dict[int, None] = {}
    for contact_id in contact_ids:
        account_id = index.contact_account.get(contact_id)
        if account_id is not None:
            accounts.setdefault(account_id)
    return tuple(accounts)

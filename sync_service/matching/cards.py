"""What a new address-book card becomes under ``CRM_AUTO_CREATE`` (SPEC §3.6): the policy mail follows. Pure.

A card of a synced address book (``vcf://``, an Exchange or Graph contacts folder) that matches no CRM contact
or lead by any of its addresses is a new person. Like an unknown mail participant it becomes
- under ``account-domains`` (the default): a contact of the account owning the domain (or a parent domain) of
  one of its addresses;
- under ``all``: that too, else a **lead** when it has an address at an unknown non-public domain;
- under ``none``: nothing.

The addresses that can decide are the card's external ones (not a rep's, not at an internal domain) that are
neither at a public mail provider (``domains.is_public_mail_domain``, the check matching uses) nor a no-reply /
system address (``role_addresses``); the first of them at an account's domain wins, in the card's order. So a
card with only gmail / yahoo addresses — a rep's friends and family — is never created ("private mail stays
private"), and a mixed card (``jane@acme.com`` and ``jane.doe@gmail.com``) is decided by its company address.
A card with an address on the never-log list is never created ("never for skipped items").

The new record keeps the card's external addresses except no-reply / system ones: a mixed card's private
address included, as an address book that adds it to an existing contact does (the rep filed it under that
person), so that person's mail from it is logged too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sync_service.matching.domains import email_domain, normalize_email
from sync_service.matching.model import CandidateIndex
from sync_service.matching.resolve import domain_facts, is_internal_key, never_log_entry
from sync_service.matching.role_addresses import is_role_address

CardAction = Literal["contact", "lead", "nothing"]


@dataclass(frozen=True, slots=True)
class CardPlan:
    action: CardAction
    reason: str  # one line: why (shown in the sync's debug log, asserted by tests)
    emails: tuple[str, ...] = ()  # what the new contact or lead keeps, normalised, in the card's order
    account_id: int | None = None  # a new contact's account
    deciding: str | None = None  # the address that decided


def plan_new_card(emails: Iterable[str], index: CandidateIndex, policy: str) -> CardPlan:
    """What a card matching no CRM contact or lead becomes (see the module docstring)."""
    addresses = tuple(dict.fromkeys(e for e in map(normalize_email, emails) if "@" in e))
    if not addresses:
        return CardPlan("nothing", "the card has no email address")
    if policy == "none":
        return CardPlan("nothing", "policy none")
    for address in addresses:
        entry = never_log_entry(address, index)
        if entry is not None:
            return CardPlan("nothing", f"{address} is covered by the never-log entry {entry}")
    external = [a for a in addresses if not is_internal_key(a, index)]
    kept = tuple(a for a in external if not is_role_address(a))
    deciding = [a for a in kept if not domain_facts(email_domain(a), index).public]
    if not deciding:
        why = "internal, at a public mail provider or a no-reply / system address"
        return CardPlan("nothing", f"every address is {why}")
    for address in deciding:
        account_id = domain_facts(email_domain(address), index).account_id
        if account_id is not None:
            return CardPlan("contact", f"{address} is at account {account_id}'s domain", kept, account_id, address)
    if policy == "all":
        return CardPlan("lead", f"{deciding[0]} is at an unknown non-public domain", kept, None, deciding[0])
    return CardPlan("nothing", "no address at an account's domain (policy account-domains)")

"""The matcher's entry point: one item's facts + the candidate index → a ``MatchDecision`` (SPEC §3).

Order of work, each step a line of ``explanation``:
1. direction (outbound when the sender is internal) and the external participants (sender, then the
   Reply-To addresses, then recipients in the order given, de-duplicated; phone numbers in E.164);
2. skips that need no lookup: internal-only, automated (emails only), never-log — privacy wins;
3. resolve every external participant (``resolve.py``) and plan auto-creation (policy ``CRM_AUTO_CREATE``;
   none when an item has more than ``MAX_NEW_CONTACTS`` new people); nothing resolved and nothing to create
   → skipped as unmatched;
4. contacts, accounts and the primary account, the opportunity (rules a–d), the lead.
Pure: plain data in, plain data out; the caller writes the links and creates the records.

Real-world header decisions:
- ``Reply-To`` differing from ``From`` (mail sent through a ticketing or marketing tool, by an assistant,
  from a private address): each Reply-To address is a participant like a recipient, because answers go to
  it. For the primary account of inbound mail it stands in for the sender when the From address itself
  reaches no account. Direction still follows ``From`` alone.
- Forwarded mail is matched on its own headers: the person forwarding is the sender and the original
  correspondents inside the body do not count, so a customer's mail forwarded between two reps is
  internal-only (the original was logged from the mailbox that received it), while a forward to a customer
  is logged for that customer. A ``[OPP-<id>]`` token survives "Fwd:" and still links it.
- Mailing lists, out-of-office and other automatic replies are recognised by the header parser
  (``automated_reason``); a person forwarding or answering such a message is not automated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sync_service.matching.domains import company_from_domain, email_domain, normalize_email
from sync_service.matching.model import (
    OPP_ACCOUNT,
    OPP_PARTICIPANT,
    OPP_THREAD,
    OPP_TOKEN,
    SKIP_AUTOMATED,
    SKIP_INTERNAL,
    SKIP_NEVER_LOG,
    SKIP_UNMATCHED,
    AutoCreatePolicy,
    CandidateIndex,
    Direction,
    ItemFacts,
    MatchDecision,
    NewContact,
    NewLead,
)
from sync_service.matching.phones import to_e164
from sync_service.matching.resolve import (
    Resolution,
    is_internal_key,
    never_log_entry,
    resolve_key,
    resolve_phone,
)
from sync_service.matching.role_addresses import is_role_address
from sync_service.values import Address

_POLICIES = ("none", "account-domains", "all")
REPLY_TO = "reply-to"  # the role of a Reply-To address among the participants
# Contacts one item may create: a meeting or a thread with a customer has a handful of new people; a message
# to a distribution list or a spam run (thousands of addresses at a customer's domain) must not fill the CRM.
# An item with more than this many creates none (``_new_contacts``).
MAX_NEW_CONTACTS = 25
_TOKEN = re.compile(r"\[\s*OPP-(\d+)\s*\]", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Party:
    """One external participant: an address (with its display name) or a phone number."""

    role: str  # sender / reply-to / recipient / organizer / attendee / phone
    key: str  # normalised email or E.164
    name: str = ""


def decide(
    facts: ItemFacts, index: CandidateIndex, *, policy: AutoCreatePolicy = "account-domains"
) -> MatchDecision:
    """Match one email, meeting or call to CRM records, or say why it is not logged."""
    direction, lines, parties = _parties(facts, index, policy)
    skip = _early_skip(facts, index, parties)
    if skip:
        return MatchDecision(skip_reason=skip[0], direction=direction, explanation=(*lines, skip[1]))
    resolved = [(party, _resolve(party, index)) for party in parties]
    lines += [f"{party.role} {party.key} → {res.describe()}" for party, res in resolved]
    new_contacts, left_out = _new_contacts(resolved, policy)
    new_leads = _new_leads(resolved, direction, policy)
    roles = _roles(resolved, direction, policy)
    lines += [f"new contact {c.email} at account {c.account_id} (policy {policy})" for c in new_contacts]
    if left_out:
        lines.append(
            f"{left_out} new contacts not created: more than {MAX_NEW_CONTACTS} in one item"
            " (a distribution list?); the item is still linked to their accounts"
        )
    lines += [f"new lead {n.email} of company {n.company!r} (policy {policy})" for n in new_leads]
    lines += [f"no contact or lead for {key}: a no-reply / system address" for key in roles]
    if not new_leads and not any(res.resolved for _, res in resolved):
        lines.append(f"skipped: {SKIP_UNMATCHED} — no external participant is a CRM contact, lead or account")
        return MatchDecision(skip_reason=SKIP_UNMATCHED, direction=direction, explanation=tuple(lines))
    return _link(facts, index, direction, resolved, lines, new_contacts, new_leads)


def skip_reason(
    facts: ItemFacts, index: CandidateIndex, *, policy: AutoCreatePolicy = "account-domains"
) -> str | None:
    """``decide(...).skip_reason`` without the rest of the decision (no explanation, links or opportunity):
    what parsing ahead asks to know whether an email's body will be needed."""
    direction, _lines, parties = _parties(facts, index, policy)
    skip = _early_skip(facts, index, parties)
    if skip:
        return skip[0]
    resolved = [(party, _resolve(party, index)) for party in parties]
    if not _new_leads(resolved, direction, policy) and not any(res.resolved for _, res in resolved):
        return SKIP_UNMATCHED
    return None


def _parties(
    facts: ItemFacts, index: CandidateIndex, policy: AutoCreatePolicy
) -> tuple[Direction | None, list[str], list[_Party]]:
    """The direction (with its explanation line) and the external participants, in order."""
    if policy not in _POLICIES:
        raise ValueError(f"unknown auto-create policy {policy!r}; expected one of {', '.join(_POLICIES)}")
    sender = normalize_email(facts.sender.email) if facts.sender is not None and facts.sender.email else ""
    sender_internal = bool(sender) and is_internal_key(sender, index)
    direction, lines = _direction(sender, sender_internal)
    return direction, lines, _external_parties(facts, index, sender, sender_internal)


def _link(
    facts: ItemFacts,
    index: CandidateIndex,
    direction: Direction | None,
    resolved: list[tuple[_Party, Resolution]],
    lines: list[str],
    new_contacts: tuple[NewContact, ...],
    new_leads: tuple[NewLead, ...],
) -> MatchDecision:
    contact_ids = _unique(c for _, res in resolved for c in res.contact_ids)
    reached = [a for _, res in resolved for a in res.account_ids]
    account_ids = _unique(reached + [c.account_id for c in new_contacts])
    primary, why = _primary_account(direction, resolved, account_ids)
    if primary is not None:
        lines.append(f"primary account {primary}: {why}")
    opportunity, rule, review, opp_lines = _opportunity(facts, index, contact_ids, primary)
    lines += opp_lines
    lead_id = next((res.lead_ids[0] for _, res in resolved if res.via == "lead"), None)
    if lead_id is not None:
        lines.append(f"lead {lead_id}: the first participant that is a lead")
    return MatchDecision(
        direction=direction,
        contact_ids=contact_ids,
        lead_id=lead_id,
        account_ids=account_ids,
        primary_account_id=primary,
        opportunity_id=opportunity,
        opportunity_rule=rule,
        review_candidates=review,
        new_contacts=new_contacts,
        new_leads=new_leads,
        explanation=tuple(lines),
    )


def _direction(sender: str, internal: bool) -> tuple[Direction | None, list[str]]:
    """``sender``: the normalised From address ("" when there is none); ``internal``: whether it is internal."""
    if not sender:
        return None, ["direction unknown: no sender"]
    if internal:
        return "outbound", [f"outbound: sender {sender} is internal"]
    return "inbound", [f"inbound: sender {sender} is external"]


def _external_parties(facts: ItemFacts, index: CandidateIndex, sender: str, sender_internal: bool) -> list[_Party]:
    """Sender first, then Reply-To, then participants as given; internal ones left out; then phone numbers.

    ``sender`` / ``sender_internal``: the sender's address, normalised and classified once by ``decide``.
    """
    sender_role, other_role = ("sender", "recipient") if facts.kind == "email" else ("organizer", "attendee")
    parties: dict[str, _Party] = {}
    if facts.sender is not None and "@" in sender and not sender_internal:
        parties[sender] = _Party(sender_role, sender, facts.sender.name.strip())
    addresses: list[tuple[str, Address]] = [(REPLY_TO, a) for a in facts.reply_to]
    addresses += [(other_role, a) for a in facts.participants]
    for role, address in addresses:
        email = normalize_email(address.email)
        if "@" in email and email not in parties and email != sender and not is_internal_key(email, index):
            parties[email] = _Party(role, email, address.name.strip())
    for raw in facts.phones:
        e164 = to_e164(raw, index.default_region)
        if e164 and e164 not in parties:
            parties[e164] = _Party("phone", e164)
    return list(parties.values())


def _early_skip(facts: ItemFacts, index: CandidateIndex, parties: list[_Party]) -> tuple[str, str] | None:
    if not parties:
        return SKIP_INTERNAL, f"skipped: {SKIP_INTERNAL} — every participant is internal"
    if facts.kind == "email" and facts.automated_reason:
        return SKIP_AUTOMATED, f"skipped: {SKIP_AUTOMATED} — {facts.automated_reason}"
    for party in parties:
        entry = never_log_entry(party.key, index)
        if entry is not None:
            return SKIP_NEVER_LOG, f"skipped: {SKIP_NEVER_LOG} — {party.key} is covered by the entry {entry}"
    return None


def _resolve(party: _Party, index: CandidateIndex) -> Resolution:
    return resolve_phone(party.key, index) if party.role == "phone" else resolve_key(party.key, index)


def _new_contacts(resolved: list[tuple[_Party, Resolution]], policy: str) -> tuple[tuple[NewContact, ...], int]:
    """An unknown address at a known account's domain becomes a contact of that account (SPEC §3.6); never a
    no-reply / system address (``role_addresses``), whose item is still linked to the account.

    More than ``MAX_NEW_CONTACTS`` of them in one item: none is created (the count is returned). Not "the
    first 25": re-matching replays the decision after every import, and each replay would create the next 25
    until the whole list is in the CRM; with "none", a replay creates only what the policy allows once other
    items (or an import) have made most of them known."""
    if policy == "none":
        return (), 0
    wanted = tuple(
        NewContact(party.key, party.name or _name_from_email(party.key), res.account_ids[0])
        for party, res in resolved
        if res.via == "domain" and not is_role_address(party.key)
    )
    return ((), len(wanted)) if len(wanted) > MAX_NEW_CONTACTS else (wanted, 0)


def _roles(resolved: list[tuple[_Party, Resolution]], direction: Direction | None, policy: str) -> list[str]:
    """The no-reply / system addresses the policy would otherwise have made a contact or lead for."""
    if policy == "none":
        return []
    lead = _lead_candidate(resolved, direction, policy)
    could = [*([lead] if lead is not None else []), *(party for party, res in resolved if res.via == "domain")]
    return [party.key for party in could if is_role_address(party.key)]


def _lead_candidate(
    resolved: list[tuple[_Party, Resolution]], direction: Direction | None, policy: str
) -> _Party | None:
    """Policy ``all``: the unknown inbound sender at a non-public domain, if any (role address or not)."""
    if policy != "all" or direction != "inbound" or not resolved:
        return None
    party, res = resolved[0]
    if party.role not in ("sender", "organizer") or res.resolved or res.public_domain:
        return None
    return party


def _new_leads(
    resolved: list[tuple[_Party, Resolution]], direction: Direction | None, policy: str
) -> tuple[NewLead, ...]:
    """Policy ``all``: an unknown inbound sender at a non-public domain becomes a lead — never a no-reply /
    system address (``role_addresses``)."""
    party = _lead_candidate(resolved, direction, policy)
    if party is None or is_role_address(party.key):
        return ()
    name = party.name or _name_from_email(party.key)
    return (NewLead(party.key, name, company_from_domain(email_domain(party.key))),)


def _primary_account(
    direction: Direction | None, resolved: list[tuple[_Party, Resolution]], account_ids: tuple[int, ...]
) -> tuple[int | None, str]:
    """Inbound: the sender's account (or its Reply-To's); outbound: the first resolved recipient's; else the
    first reached."""
    senders = [res for party, res in resolved if party.role in ("sender", "organizer")]
    if direction == "inbound" and senders and senders[0].account_id is not None:
        return senders[0].account_id, "the sender's account"
    reply_to = next((res for party, res in resolved if party.role == REPLY_TO and res.account_id), None)
    if direction == "inbound" and reply_to is not None:
        return reply_to.account_id, f"the account of the Reply-To address {reply_to.key}"
    if direction == "outbound":
        first = next((res for _, res in resolved if res.account_id is not None), None)
        if first is not None:
            return first.account_id, f"the account of the first resolved recipient {first.key}"
    if account_ids:
        return account_ids[0], "the first account reached"
    return None, ""


def _opportunity(
    facts: ItemFacts, index: CandidateIndex, contact_ids: tuple[int, ...], primary: int | None
) -> tuple[int | None, str | None, tuple[int, ...], list[str]]:
    """SPEC §3.4: the first rule that gives exactly one opportunity; else the review candidates of the first rule
    that gave several.

    Rules are tried lazily, in order: a rule after the one that decided costs no lookup (the participant and
    account tables are as large as the CRM).
    """
    lines: list[str] = []
    ambiguous: list[tuple[int, ...]] = []  # the candidates of each rule that gave several, in rule order
    for rule, letter, found, why in (
        (OPP_THREAD, "a", _by_thread(facts, index), "the item continues a thread linked to it"),
        (OPP_TOKEN, "b", _by_token(facts, index), "tracking token [OPP-{id}] in the subject"),
    ):
        if len(found) == 1:
            return found[0], rule, (), [*lines, f"opportunity {found[0]} by rule {letter}: " + why.format(id=found[0])]
        if found:
            lines.append(f"rule {letter} ambiguous: opportunities {_join(sorted(found))}")
            ambiguous.append(found)
    per_contact = [(c, index.open_opps_by_contact.get(c, ())) for c in contact_ids]
    by_contact = _unique(o for _, opps in per_contact for o in opps)
    if len(by_contact) == 1:
        opp = by_contact[0]
        contact = next(c for c, opps in per_contact if opp in opps)
        why = f"the only open opportunity with contact {contact}"
        return opp, OPP_PARTICIPANT, (), [*lines, f"opportunity {opp} by rule c: {why}"]
    if by_contact:
        lines.append(f"rule c ambiguous: opportunities {_join(sorted(by_contact))}")
        ambiguous.append(by_contact)
    by_account = _unique(index.open_opps_by_account.get(primary, ())) if primary is not None else ()
    if len(by_account) == 1:
        opp = by_account[0]
        why = f"the only open opportunity of account {primary}"
        return opp, OPP_ACCOUNT, (), [*lines, f"opportunity {opp} by rule d: {why}"]
    if by_account:
        lines.append(f"rule d ambiguous: opportunities {_join(sorted(by_account))}")
        ambiguous.append(by_account)
    review = tuple(sorted(ambiguous[0])) if ambiguous else ()  # the first rule that found several decides
    return (
        None,
        None,
        review,
        [*lines, f"no opportunity: review candidates {_join(review)}" if review else "no opportunity"],
    )


def thread_refs(in_reply_to: Iterable[str], references: Iterable[str], conversation_id: str | None) -> list[str]:
    """The thread keys rule a looks up for an item: what it replies to and its Outlook conversation."""
    keys = (*in_reply_to, *references, conversation_id or "")
    return [k.strip().strip("<>") for k in keys if k.strip()]


def _by_thread(facts: ItemFacts, index: CandidateIndex) -> tuple[int, ...]:
    """Rule a: In-Reply-To, References and the Outlook conversation of items already linked."""
    keys = thread_refs(facts.in_reply_to, facts.references, facts.conversation_id)
    return _unique(index.thread_opportunity.get(k) for k in keys)


def _by_token(facts: ItemFacts, index: CandidateIndex) -> tuple[int, ...]:
    """Rule b: ``[OPP-<id>]`` tokens in the subject naming an existing opportunity."""
    ids = (int(token) for token in _TOKEN.findall(facts.subject))
    return _unique(i for i in ids if i in index.opportunity_account)


def _join(ids: Iterable[int]) -> str:
    return ", ".join(str(i) for i in ids)


def _unique(values: Iterable[int | None]) -> tuple[int, ...]:
    """Distinct non-None ints in order of first appearance."""
    return tuple(dict.fromkeys(v for v in values if v is not None))


def _name_from_email(email: str) -> str:
    """``jane.doe@acme.com`` → ``Jane Doe``: a readable name when the item gave none."""
    local = email.partition("@")[0].split("+", 1)[0]
    words = re.split(r"[._\-]+", local)
    return " ".join(w[:1].upper() + w[1:] for w in words if w) or email

"""Build the ``CandidateIndex`` from the database — the only SQLAlchemy code in ``matching``.

One pass per table with plain column selects (no ORM objects, run on the session's connection), so 100,000
contacts load in about a second.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from crm_store.db import one_of
from crm_store.models import (
    AccountDomain,
    Activity,
    Contact,
    ContactEmail,
    ContactPhone,
    LeadEmail,
    LeadPhone,
    NeverLog,
    Opportunity,
    OpportunityParticipant,
    SyncedItem,
    User,
)
from crm_store.models.sales import OPEN
from sync_service.matching.domains import is_public_mail_domain, normalize_domain, normalize_email
from sync_service.matching.model import CandidateIndex


def _never_log_key(value: str) -> str:
    return normalize_email(value) if "@" in value else normalize_domain(value)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
K = TypeVar("K")
V = TypeVar("V")


class _Same:
    """One object per distinct value: the ids a dict returns are then the very keys of the next dict looked
    up (``contacts_by_email`` → ``contact_account``), so a lookup compares identities and never reads a second
    int from memory — it matters for a 100,000-contact index (see ``bench/bench_matching.py``)."""

    def __init__(self) -> None:
        self.seen: dict[Any, Any] = {}

    def __call__(self, value: V) -> V:
        kept: V = self.seen.setdefault(value, value)
        return kept


def _group(pairs: Iterable[tuple[K | None, int]], same: _Same) -> dict[K, tuple[int, ...]]:
    """Each key's distinct values, in their order. Most keys have one value: each gets a tuple at once (no
    list to convert at the end), grown in the rare case of a second value."""
    grouped: dict[K, tuple[int, ...]] = {}
    keep = same.seen.setdefault
    _group_into(grouped, pairs, keep)
    return {keep(k, k): v for k, v in grouped.items()}


def _group_into(
    grouped: dict[K, tuple[int, ...]], pairs: Iterable[tuple[K | None, int]], keep: Callable[[Any, Any], Any]
) -> None:
    """Add ``pairs`` to ``grouped``: a value a key already has changes nothing (``_group``, ``with_new_rows``)."""
    for key, value in pairs:
        if key is None:
            continue
        value = keep(value, value)
        got = grouped.get(key)
        if got is None:
            grouped[key] = (value,)
        elif value not in got:
            grouped[key] = (*got, value)


def _emails(rows: Iterable[tuple[str | None, int]], same: _Same) -> dict[str, tuple[int, ...]]:
    return _group(((normalize_email(e) if e else None, i) for e, i in rows), same)


def thread_keys(
    session: Session,
    *,
    manual_only: bool = False,
    sent_before: datetime | None = None,
    exclude_items: Collection[int] = (),
    keys: Collection[str] | None = None,
) -> dict[str, int]:
    """Message ids and Outlook conversation ids of items linked to an opportunity → that opportunity (rule a).

    ``manual_only``: only activities whose opportunity a person chose (re-matching replays the rest);
    ``sent_before`` / ``exclude_items``: the thread as it was before an item, without the item itself — so an
    item matched again is never held in place by its own link; ``keys``: only these message and conversation
    ids (what a batch's replies refer to), looked up through their indexes.
    """
    stmt = (
        select(SyncedItem.message_id, SyncedItem.conversation_id, Activity.opportunity_id)
        .join(Activity, Activity.item_id == SyncedItem.id)
        .where(Activity.opportunity_id.is_not(None))
        .order_by(SyncedItem.sent_at, SyncedItem.id)  # later items win a shared conversation id
    )
    if manual_only:
        stmt = stmt.where(Activity.opportunity_manual.is_(True))
    if sent_before is not None:
        stmt = stmt.where(SyncedItem.sent_at < sent_before)
    if exclude_items:
        stmt = stmt.where(SyncedItem.id.not_in(list(exclude_items)))
    if keys is None:
        rows: Iterable[_ThreadRow] = session.execute(stmt)
    else:
        rows = _rows_for_keys(session, stmt, sorted(set(keys)))
    threads: dict[str, int] = {}
    for message_id, conversation_id, opp_id in rows:
        if opp_id is None:
            continue
        if message_id:
            threads[message_id] = opp_id
        if conversation_id:
            threads[conversation_id] = opp_id
    return threads


_ThreadRow = tuple[str | None, str | None, int | None]  # message id, conversation id, opportunity
_KEYS_PER_QUERY = 500  # two IN lists per query: well under SQLite's bound-parameter limit


def _rows_for_keys(
    session: Session, stmt: Select[str | None, str | None, int | None], keys: list[str]
) -> list[_ThreadRow]:
    """``stmt``'s rows whose message or conversation id is one of ``keys``, in its order (by date, then id)."""
    found: dict[int, tuple[datetime | None, _ThreadRow]] = {}
    with_order = stmt.add_columns(SyncedItem.id, SyncedItem.sent_at)
    dialect = session.get_bind().dialect.name
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        chunk = keys[start : start + _KEYS_PER_QUERY]
        matching = or_(
            one_of(SyncedItem.message_id, chunk, dialect), one_of(SyncedItem.conversation_id, chunk, dialect)
        )
        for message_id, conversation_id, opp_id, item_id, sent_at in session.execute(with_order.where(matching)):
            found[item_id] = (sent_at, (message_id, conversation_id, opp_id))
    # Undated first, as SQLite sorts NULLs; one order however many chunks there were.
    ordered = sorted(found.items(), key=lambda entry: (entry[1][0] is not None, entry[1][0] or _EPOCH, entry[0]))
    return [row for _item_id, (_sent_at, row) in ordered]


def build_index(
    session: Session, internal_domains: frozenset[str], region: str = "US", *, threads: bool = True
) -> CandidateIndex:
    """The whole index; ``threads=False`` leaves rule a's thread map empty (the caller fills it)."""
    # Core, not ORM, execution: these are plain column selects, and skipping the ORM's row loading makes the
    # index (built at the start of every processing run) about a third faster to load.
    if session.autoflush:  # as ``session.execute`` would
        session.flush()
    db = session.connection()
    users = {normalize_email(email): uid for uid, email in db.execute(select(User.id, User.email))}
    # A rep registered with a public address makes that address internal, never the whole provider.
    user_domains = {d for d in (e.rpartition("@")[2] for e in users) if not is_public_mail_domain(d)}
    opps = db.execute(select(Opportunity.id, Opportunity.account_id, Opportunity.status)).all()
    open_ids = frozenset(oid for oid, _aid, status in opps if status == OPEN)
    participants = db.execute(
        select(OpportunityParticipant.contact_id, OpportunityParticipant.opportunity_id)
    ).all()
    same = _Same()
    return CandidateIndex(
        internal_domains=frozenset(internal_domains | user_domains),
        user_emails=users,
        never_log=frozenset(_never_log_key(v) for v in db.scalars(select(NeverLog.value))),
        contacts_by_email=_emails(db.execute(select(ContactEmail.email, ContactEmail.contact_id)).all(), same),
        contacts_by_phone=_group(db.execute(select(ContactPhone.e164, ContactPhone.contact_id)).all(), same),
        contact_account={same(c): same(a) for c, a in db.execute(select(Contact.id, Contact.account_id)).all()},
        leads_by_email=_emails(db.execute(select(LeadEmail.email, LeadEmail.lead_id)).all(), same),
        leads_by_phone=_group(db.execute(select(LeadPhone.e164, LeadPhone.lead_id)).all(), same),
        account_by_domain={
            normalize_domain(d): same(a)
            for d, a in db.execute(select(AccountDomain.domain, AccountDomain.account_id)).all()
        },
        open_opps_by_contact=_group(((c, o) for c, o in participants if o in open_ids), same),
        open_opps_by_account=_group(((a, o) for o, a, _s in opps if o in open_ids), same),
        open_opportunities=frozenset(same(o) for o in open_ids),
        opportunity_account={same(oid): same(aid) for oid, aid, _s in opps},
        thread_opportunity=thread_keys(session) if threads else {},
        default_region=region,
    )


def with_new_rows(
    index: CandidateIndex,
    contacts: Iterable[tuple[int, int | None]] = (),
    contact_emails: Iterable[tuple[str | None, int]] = (),
    lead_emails: Iterable[tuple[str | None, int]] = (),
) -> CandidateIndex:
    """``index`` with rows added to the CRM since it was read, as ``build_index`` would have read them: new
    contacts (id, account), contacts' and leads' new addresses (address, contact or lead). Only for inserts:
    a row the index already has changes nothing, so rows that may be new can be given as they are
    (``pipeline.index_cache``). The maps it adds to are new; the others are ``index``'s own."""
    contact_account = dict(index.contact_account)
    contact_account.update(contacts)
    return replace(
        index,
        contacts_by_email=_added(index.contacts_by_email, contact_emails),
        contact_account=contact_account,
        leads_by_email=_added(index.leads_by_email, lead_emails),
        domain_cache=index.domain_cache,  # domains, accounts' domains and the never-log list are unchanged
    )


def _added(grouped: dict[str, tuple[int, ...]], rows: Iterable[tuple[str | None, int]]) -> dict[str, tuple[int, ...]]:
    result = dict(grouped)
    _group_into(result, ((normalize_email(e) if e else None, i) for e, i in rows), _Same().seen.setdefault)
    return result

"""Matching benchmark (issue 4): does matching stay fast, and flat, as the CRM grows?

Run from the repository root (about 75 s; nothing to set up, the CRMs live in in-memory SQLite):

    python -m bench.bench_matching                 # 1,000 vs 100,000 contacts, 20,000 messages each
    python -m bench.bench_matching --messages 5000 --contacts 1000 20000   # quicker

For each CRM size it builds a CRM in a database with plain bulk inserts — N contacts (a fifth with a second,
private gmail address), N/5 accounts with a domain each, 1.5 open opportunities per account with two
participants each, N/10 leads, 20 reps — then ``matching.load.build_index`` (timed), then generates the
same mix of messages against that CRM as raw header blocks:

    56% inbound from a contact (a third cc a colleague)   15% outbound from a rep to a contact
     8% an unknown person at an account's domain (or a subdomain)   7% private mail from a public provider
     5% internal only   4% mailing list (List-Id)   3% [OPP-<id>] token   2% a reply in a known thread

``parse_headers`` + ``facts_of`` turn them into facts (timed apart: header parsing is not matching), and
``decide()`` matches them — as in a sync, per batch of 500, each batch right after its headers were parsed
(only ``decide`` is timed) — once cold (address and domain caches empty), then in ``--rounds`` passes over
all messages. Within a pass the CRM sizes take turns every ``--block`` batches (default 4: 2,000 messages,
about a quarter of a second), the order alternating, so that a burst of load from other processes on this
shared machine hits both sizes alike; ``--block 40`` runs one size after the other, whole. Before timing,
``gc.collect()`` + ``gc.freeze()`` for both sizes alike (``--no-freeze`` to compare). Times are the process's
CPU time (``time.process_time``): one core's work, not the wall clock of a machine busy with other things.

Printed per size: items/s and the time per item (best and median pass); then the per-item time of the
largest CRM relative to the smallest: the median over the passes of the ratio within each pass, its range,
and best vs best. The issue's targets: a ratio ≤ 1.2 (the median), and ≥ 20,000 items/s (median pass) for
matching alone on one core (the exit status is 1 when a target is missed).
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from sqlalchemy import create_engine, insert
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/bench_matching.py` works too

from crm_store.models import (
    Account,
    AccountDomain,
    Base,
    Contact,
    ContactEmail,
    Lead,
    LeadEmail,
    NeverLog,
    Opportunity,
    OpportunityParticipant,
    User,
)
from sync_service.matching.decide import decide
from sync_service.matching.load import build_index
from sync_service.matching.model import CandidateIndex, ItemFacts
from sync_service.parsing.mime import parse_headers
from sync_service.pipeline.email_facts import facts_of

INTERNAL = "northwind-sales.example"
REPS = [f"rep{i}@{INTERNAL}" for i in range(20)]
PUBLIC = ("gmail.com", "outlook.com", "yahoo.com", "gmx.de", "icloud.com")
DATE = format_datetime(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))


@dataclass
class Crm:
    contacts: int
    accounts: int
    opportunities: list[tuple[int, int]]  # (opportunity id, account id)
    members: dict[int, list[int]]  # account id → contact ids

    def email(self, contact: int) -> str:
        return f"c{contact}@acct{self.account_of(contact)}.example"

    def account_of(self, contact: int) -> int:
        return (contact - 1) % self.accounts + 1


def build_crm(session: Session, contacts: int, rng: random.Random) -> Crm:
    """Bulk inserts, ids assigned here (1…n), so relations need no round trip."""
    accounts = max(1, contacts // 5)
    crm = Crm(contacts, accounts, [], {})
    session.execute(insert(User), [{"id": i + 1, "email": e, "name": e.split("@")[0]} for i, e in enumerate(REPS)])
    session.execute(
        insert(Account),
        [
            {"id": a, "name": f"Account {a}", "name_key": f"account {a}", "type": "customer"}
            for a in range(1, accounts + 1)
        ],
    )
    session.execute(
        insert(AccountDomain), [{"account_id": a, "domain": f"acct{a}.example"} for a in range(1, accounts + 1)]
    )
    contact_rows, email_rows = [], []
    for c in range(1, contacts + 1):
        crm.members.setdefault(crm.account_of(c), []).append(c)
        contact_rows.append({"id": c, "name": f"Contact {c}", "account_id": crm.account_of(c), "source": "import"})
        email_rows.append({"contact_id": c, "email": crm.email(c), "position": 0})
        if c % 5 == 0:
            email_rows.append({"contact_id": c, "email": f"c{c}.private@gmail.com", "position": 1})
    session.execute(insert(Contact), contact_rows)
    session.execute(insert(ContactEmail), email_rows)
    leads = max(1, contacts // 10)
    session.execute(
        insert(Lead), [{"id": n, "name": f"Lead {n}", "company": f"Startup {n}"} for n in range(1, leads + 1)]
    )
    session.execute(
        insert(LeadEmail),
        [{"lead_id": n, "email": f"founder@startup{n}.example", "position": 0} for n in range(1, leads + 1)],
    )
    opp_rows: list[dict[str, object]] = []
    participant_rows: list[dict[str, int]] = []
    for a in range(1, accounts + 1):
        for _ in range(1 if a % 2 else 2):  # 1.5 open opportunities per account
            oid = len(opp_rows) + 1
            opp_rows.append({"id": oid, "title": f"Deal {oid}", "account_id": a, "stage": "Qualification"})
            crm.opportunities.append((oid, a))
            for contact in rng.sample(crm.members[a], min(2, len(crm.members[a]))):
                participant_rows.append({"opportunity_id": oid, "contact_id": contact})
    session.execute(insert(Opportunity), opp_rows)
    session.execute(insert(OpportunityParticipant), participant_rows)
    session.execute(insert(NeverLog), [{"value": f"hr{i}.example"} for i in range(100)])
    session.commit()
    return crm


def generate_messages(crm: Crm, count: int, rng: random.Random) -> tuple[list[bytes], dict[str, int]]:
    """Raw header blocks in the mix of the module docstring, and the thread map (message id → opportunity)
    of the earlier messages that the replies answer."""
    threads = {f"old{i}@acct.example": rng.choice(crm.opportunities)[0] for i in range(max(1, count // 50))}
    old = list(threads)
    messages = []
    for i in range(count):
        contact = rng.randint(1, crm.contacts)
        account = crm.account_of(contact)
        colleague = rng.choice(crm.members[account])
        rep = rng.choice(REPS)
        headers = [f"Message-ID: <m{i}@bench.example>", f"Date: {DATE}"]
        roll = rng.random()
        if roll < 0.56:
            cc = [crm.email(colleague)] if rng.random() < 0.33 else []
            headers += [f'From: "Person, {contact}" <{crm.email(contact)}>', f"To: {rep}"]
            headers += [f"Cc: {', '.join(cc)}"] if cc else []
            headers.append("Subject: Re: our project")
        elif roll < 0.71:
            headers += [f"From: {rep}", f"To: Contact <{crm.email(contact)}>", f"Cc: {rng.choice(REPS)}"]
            headers.append("Subject: Proposal")
        elif roll < 0.79:
            sub = "eu." if rng.random() < 0.3 else ""
            headers += [f"From: New Person <new{i}@{sub}acct{account}.example>", f"To: {rep}", "Subject: Hello"]
        elif roll < 0.86:
            headers += [f"From: someone{i}@{rng.choice(PUBLIC)}", f"To: {rep}", "Subject: Dinner?"]
        elif roll < 0.91:
            headers += [f"From: {rep}", f"To: {rng.choice(REPS)}", "Subject: Lunch"]
        elif roll < 0.95:
            headers += [f"From: {crm.email(contact)}", f"To: {rep}", "List-Id: <news.acct.example>", "Subject: News"]
        elif roll < 0.98:
            opp = rng.choice(crm.opportunities)[0]
            headers += [f"From: {crm.email(contact)}", f"To: {rep}", f"Subject: Quote [OPP-{opp}]"]
        else:
            headers += [f"From: {crm.email(contact)}", f"To: {rep}", f"In-Reply-To: <{rng.choice(old)}>"]
            headers.append("Subject: Re: thread")
        messages.append(("\r\n".join(headers) + "\r\n\r\n").encode())
    return messages, threads


BATCH = 500  # the pipeline's default batch size (CRM_BATCH_SIZE)


def timed_decide(facts: list[ItemFacts], index: CandidateIndex) -> float:
    start = time.process_time()
    for f in facts:
        decide(f, index)
    return time.process_time() - start


def matching_time(raws: list[bytes], index: CandidateIndex, start: int = 0, stop: int | None = None) -> float:
    """Match the messages as the pipeline does: per batch, parse the headers (not timed), then decide (timed).

    Each item is matched right after it was parsed, as in a sync, so its own data is in the CPU cache and the
    time measured is what depends on the CRM: the index lookups. (Matching one list of items over and over
    would flatter the small CRM, whose index and items fit in the CPU cache together.) ``start`` / ``stop``:
    only those messages (multiples of the batch size).
    """
    total = 0.0
    for first in range(start, len(raws) if stop is None else stop, BATCH):
        facts = [facts_of(parse_headers(raw), REPS[0]) for raw in raws[first : first + BATCH]]
        total += timed_decide(facts, index)
    return total


def timed_round(results: list[Prepared], block: int, flip: bool) -> list[float]:
    """One pass over every CRM's messages, seconds per item for each. The CRMs take turns every ``block``
    batches (the order of each turn alternating), so that both sizes see the same load from other processes;
    ``block`` ≥ the number of batches: one CRM after the other, whole."""
    count = len(results[0].raws)
    totals = [0.0] * len(results)
    order = list(range(len(results)))
    step = block * BATCH
    for turn, start in enumerate(range(0, count, step)):
        for i in order if (turn % 2 == 0) != flip else order[::-1]:
            totals[i] += matching_time(results[i].raws, results[i].index, start, min(start + step, count))
    return [total / count for total in totals]


@dataclass
class Prepared:
    contacts: int
    build_s: float
    index_s: float
    parse_per_s: float
    raws: list[bytes]
    facts: list[ItemFacts]
    index: CandidateIndex
    cold_per_item: float = 0.0
    warm_per_item: float = float("inf")


def prepare(contacts: int, count: int, seed: int) -> Prepared:
    """Build the CRM and its index, generate the messages, parse them (timed), and match them once (cold)."""
    rng = random.Random(seed)
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        start = time.perf_counter()
        crm = build_crm(session, contacts, rng)
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        index = build_index(session, frozenset({INTERNAL}))
        index_s = time.perf_counter() - start
    engine.dispose()
    raws, threads = generate_messages(crm, count, rng)
    index.thread_opportunity.update(threads)
    start = time.process_time()
    facts = [facts_of(parse_headers(raw), REPS[0]) for raw in raws]
    parse_s = time.process_time() - start
    prepared = Prepared(contacts, build_s, index_s, count / parse_s, raws, facts, index)
    prepared.cold_per_item = matching_time(raws, index) / count
    return prepared


def _warm_up() -> None:
    """Load what matching loads lazily once per process (public-suffix and free-mail lists), outside timing."""
    raw = b"From: a@b.example\r\nTo: c@gmail.com\r\nSubject: x\r\n\r\n"
    decide(facts_of(parse_headers(raw), REPS[0]), CandidateIndex())


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--contacts", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=9, help="timed passes per CRM, interleaved")
    parser.add_argument(
        "--block", type=int, default=4, help="batches of one CRM before the other takes its turn (default 4)"
    )
    parser.add_argument(
        "--no-freeze", action="store_true", help="leave the collector as it is (default: gc.freeze() before timing)"
    )
    args = parser.parse_args(argv)
    _warm_up()
    results = [prepare(size, args.messages, args.seed) for size in args.contacts]
    gc.collect()
    if not args.no_freeze:
        # What is alive now (both CRMs' items and indexes) is the same for every timed pass: the collector need
        # not rescan it. The index itself holds no GC-tracked objects (dicts of str / int / int tuples), so this
        # only keeps the benchmark's own lists of parsed items out of the passes — equally for both sizes.
        gc.freeze()
    per_item: dict[int, list[float]] = {r.contacts: [] for r in results}
    for round_ in range(args.rounds):
        for r, seconds in zip(results, timed_round(results, args.block, round_ % 2 == 1), strict=True):
            per_item[r.contacts].append(seconds)
    for r in results:
        r.warm_per_item = min(per_item[r.contacts])
    print(f"{'contacts':>9} {'accounts':>8} {'crm build':>9} {'index':>7} {'headers/s':>10} "
          f"{'match/s cold':>12} {'match/s best':>12} {'median':>9} {'µs/item best':>12} {'median':>7} "
          f"{'logged':>6}")  # fmt: skip
    for r in results:
        median = _median(per_item[r.contacts])
        logged = sum(1 for f in r.facts if not decide(f, r.index).skipped) / len(r.facts)
        print(
            f"{r.contacts:>9,} {r.contacts // 5:>8,} {r.build_s:>8.1f}s {r.index_s:>6.2f}s {r.parse_per_s:>10,.0f} "
            f"{1 / r.cold_per_item:>12,.0f} {1 / r.warm_per_item:>12,.0f} {1 / median:>9,.0f} "
            f"{r.warm_per_item * 1e6:>12.1f} {median * 1e6:>7.1f} {logged:>6.0%}"
        )
    small, large = results[0], results[-1]
    # One ratio per round (the two sizes timed back to back), so a burst of load moves both terms together.
    paired = sorted(b / a for a, b in zip(per_item[small.contacts], per_item[large.contacts], strict=True))
    ratio = _median(paired)
    best_ratio, cold_ratio = large.warm_per_item / small.warm_per_item, large.cold_per_item / small.cold_per_item
    print(
        f"per-item time, {large.contacts:,} vs {small.contacts:,} contacts: {ratio:.2f}× "
        f"(median of {len(paired)} paired rounds, range {paired[0]:.2f}–{paired[-1]:.2f}; best vs best "
        f"{best_ratio:.2f}×; cold {cold_ratio:.2f}×); target ≤ 1.2×"
    )
    rate = 1 / _median(per_item[large.contacts])
    print(f"matching alone, {large.contacts:,} contacts: {rate:,.0f} items/s (median); target ≥ 20,000")
    return 0 if ratio <= 1.2 and rate >= 20_000 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Helpers of the worker tests: generated mailboxes, the failing source, database snapshots by natural keys."""

from __future__ import annotations

import functools
import itertools
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from crm_store.db import transaction
from crm_store.models import Mailbox, QuarantineEntry, RawItem, SyncedItem
from sync_service import mailboxes
from sync_service.bootstrap import App
from sync_service.exports import export_activities, export_contacts, export_documents
from tests.support.builders import REP, REP2, maildir, message, seed_crm
from tests.support.flaky import SCHEME_ENTRY

_counter = itertools.count()


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the ``flaky://`` test source (tests/support/flaky.py) for this process and its children."""
    monkeypatch.setenv("CRM_EXTRA_CONNECTORS", SCHEME_ENTRY)


def wait_for(
    predicate: Callable[[], object],
    timeout: float,
    what: str,
    every: float = 0.1,
    details: Callable[[], str] | None = None,
) -> None:
    """Poll ``predicate`` until it is true; fail with ``what`` (and the tail of ``details()``, e.g. the logs of
    the processes waited for) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            more = f"\n{details()[-4000:]}" if details is not None else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{more}")
        time.sleep(every)


def generated_mail(root: Path, count: int, shared_from: int | None = None) -> Path:
    """A Maildir of ``count`` small emails between the reps and CRM contacts; every 7th has an attachment.

    ``shared_from``: number the messages from there, so that two mailboxes hold some of the same Message-IDs
    (the same email seen by two reps must stay one activity)."""
    start = shared_from or 0
    return maildir(root, [_generated(n) for n in range(start, start + count)])


@functools.cache
def _generated(n: int) -> bytes:
    """Message number ``n``; cached, so that both mailboxes hold the very same bytes (MIME boundaries are random)."""
    people = ["wile@acme.example", "hank@globex.example", "rita@initrode.example", "pal@gmail.com"]
    base = datetime(2026, 10, 1, tzinfo=UTC)
    outside = people[n % len(people)]
    inbound = n % 3 != 0
    sender, to = (outside, [REP, REP2]) if inbound else (REP, [outside])
    attachment = (f"quote-{n}.pdf", f"%PDF-1.4 quote {n}".encode(), "application/pdf") if n % 7 == 0 else None
    at, body = base + timedelta(minutes=n), f"Message number {n}"
    return message(f"gen{n}@example.test", sender, to, f"Subject {n}", at=at, body=body, attachment=attachment)


def prepare(app: App, sources: dict[str, str]) -> None:
    """Seed the CRM and add one mailbox per ``name → source URL``."""
    owners = itertools.cycle([REP, REP2])
    with transaction(app.sessions) as session:
        seed_crm(session)
    with transaction(app.sessions) as session:
        for name, url in sources.items():
            mailboxes.add_mailbox(session, name, next(owners), url, None, ())


def snapshot(app: App) -> dict[str, Any]:
    """The database by natural keys (no ids, no timestamps): what must be equal after any crash."""
    with app.sessions() as session:

        def without(rows: list[dict[str, Any]], *keys: str) -> list[str]:
            return sorted(repr(sorted((k, v) for k, v in r.items() if k not in keys)) for r in rows)

        raw = session.execute(
            select(Mailbox.name, RawItem.folder, RawItem.external_id, RawItem.state, RawItem.sha256).join(Mailbox)
        ).all()
        quarantine = session.execute(select(QuarantineEntry.external_id, QuarantineEntry.reason)).all()
        return {
            # An email that two reps received is one activity, owned by the rep whose copy was processed first:
            # with concurrent syncs that order is arbitrary (crash or not), so the owner is left out.
            "activities": without(export_activities(session), "id", "owner"),
            "documents": without(export_documents(session), "id", "activity_id"),
            "contacts": without(export_contacts(session), "id"),
            "synced_items": sorted(session.scalars(select(SyncedItem.dedupe_key))),
            "raw_items": sorted(tuple(r) for r in raw),
            "quarantine": sorted(tuple(q) for q in quarantine),
            "items_synced": {name: n for name, n in session.execute(select(Mailbox.name, Mailbox.items_synced))},
        }


def new_postgres_database(server_url: str) -> str:
    name = f"w{os.getpid()}_{next(_counter)}"
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def assert_same(got: dict[str, Any], clean: dict[str, Any]) -> None:
    """``got == clean``, failing with what is missing and what is extra, per kind of row."""
    problems = []
    for kind in sorted(set(got) | set(clean)):
        a, b = got.get(kind), clean.get(kind)
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list):
            missing = [r for r in b if r not in a]
            extra = [r for r in a if r not in b]
            problems.append(f"{kind}: {len(a)} vs {len(b)} clean; missing {missing[:3]}; extra {extra[:3]}")
        else:
            problems.append(f"{kind}: {a!r} vs {b!r} clean")
    assert not problems, "\n".join(problems)

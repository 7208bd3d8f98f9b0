"""An address book's cards take their address locks all at once, in key order, before any card is applied
(``apply_cards`` in ``pipeline.process``, ``pipeline.contacts.card_lock_names``): two runs over address books that
share people in opposite orders wait for each other instead of deadlocking (on PostgreSQL; SQLite serialises
writers by itself), and the lock names are the mail path's (contact and lead), so a batch's new-contact check
(``new_contacts``) and a card cannot lock one address's two names in opposite orders either."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from crm_store import db
from crm_store.db import transaction
from crm_store.models import LeadEmail, RawItem
from sync_service.bootstrap import App
from sync_service.matching.model import CandidateIndex
from sync_service.pipeline import contacts, process
from sync_service.pipeline.context import ProcessContext, ProcessStats
from sync_service.pipeline.new_contacts import lead_lock_name, lock_name_of
from sync_service.values import ContactCard


def _vcard(name: str, email: str) -> str:
    return f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{name}\r\nEMAIL:{email}\r\nEND:VCARD\r\n"


A, B = ("ann@alpha-co.example", "bea@beta-co.example")


def _apply_book(app: App, emails: tuple[str, ...]) -> list[str]:
    """One run applying an address book holding a card per address (``_prepare``'s step for a contacts item),
    in a transaction of its own; its problems."""
    book = "".join(_vcard(email.partition("@")[0].title(), email) for email in emails).encode()
    settings = dataclasses.replace(app.settings, auto_create="all")  # each card a new lead
    now = datetime.now(UTC)
    with transaction(app.sessions) as session:
        ctx = ProcessContext(
            session, settings, app.blobs, CandidateIndex(), now, app.window(now), ProcessStats(), "", 0
        )
        raw = RawItem(kind="contacts", folder="", external_id="book.vcf", state="pending")
        return process._prepare(ctx, raw, book, None, {})()


def test_two_address_books_sharing_people_in_opposite_orders_do_not_deadlock(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    if app.engine.dialect.name != "postgresql":
        pytest.skip("advisory locks: PostgreSQL only")
    # Each run stops after its first card until the other has applied its first card too (or until it is clear
    # that the other cannot: it waits for this run's locks). Taking each card's locks as it is applied, the
    # first run holds ann's locks and wants bea's, the second holds bea's and wants ann's: a deadlock, which
    # PostgreSQL breaks by failing one of them.
    both_started = threading.Barrier(2)
    real = process.apply_card
    local = threading.local()

    def apply_card(ctx: ProcessContext, card: ContactCard, **kwargs: Any) -> str:
        outcome = real(ctx, card, **kwargs)
        if not getattr(local, "waited", False):
            local.waited = True
            # broken: the other run waits for this one's locks, it cannot start before this one commits
            with contextlib.suppress(threading.BrokenBarrierError):
                both_started.wait(timeout=3)
        return outcome

    monkeypatch.setattr(process, "apply_card", apply_card)
    errors: list[BaseException] = []

    def run(emails: tuple[str, ...]) -> None:
        try:
            _apply_book(app, emails)
        except BaseException as error:  # reported by the test
            errors.append(error)

    threads = [threading.Thread(target=run, args=(order,)) for order in ((A, B), (B, A))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    with app.sessions() as session:
        assert sorted(session.scalars(select(LeadEmail.email))) == [A, B]  # one lead each: made once


def test_a_books_locks_are_taken_once_in_one_statement_before_any_card(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On any backend: the order of the calls (the statement itself is ``db.lock_names``: key order)."""
    calls: list[tuple[str, Any]] = []

    def lock_names(session: Any, names: Any) -> None:
        calls.append(("lock", sorted(names)))

    def lock_name(session: Any, name: str) -> None:
        calls.append(("lock one", name))

    real = contacts.apply_card

    def apply_card(ctx: ProcessContext, card: ContactCard, **kwargs: Any) -> str:
        calls.append(("card", card.emails[0]))
        return real(ctx, card, **kwargs)

    for module in (db, contacts, process):
        if hasattr(module, "lock_names"):
            monkeypatch.setattr(module, "lock_names", lock_names)
        if hasattr(module, "lock_name"):
            monkeypatch.setattr(module, "lock_name", lock_name)
    monkeypatch.setattr(process, "apply_card", apply_card)

    _apply_book(app, (B, A, B.upper()))

    names = sorted([lock_name_of(A), lock_name_of(B), lead_lock_name(A), lead_lock_name(B)])
    assert calls == [("lock", names), ("card", B), ("card", A), ("card", B)]


def test_only_cards_that_may_create_take_lead_locks(app: App) -> None:
    """A private (public-provider), internal or no-reply card creates nothing: it takes its contact lock only,
    so a rep's address book of thousands of such cards does not double the locks a transaction holds."""
    settings = dataclasses.replace(app.settings, auto_create="all")
    now = datetime.now(UTC)
    with transaction(app.sessions) as session:
        window = app.window(now)
        ctx = ProcessContext(session, settings, app.blobs, CandidateIndex(), now, window, ProcessStats(), "", 0)
        private = ContactCard(full_name="Ann", emails=("ann@gmail.com",))
        noreply = ContactCard(full_name="Billing", emails=("noreply@alpha-co.example",))
        company = ContactCard(full_name="Bea", emails=(B,))
        names = contacts.card_lock_names(ctx, [private, noreply, company])
    assert sorted(names) == sorted(
        [lock_name_of("ann@gmail.com"), lock_name_of("noreply@alpha-co.example"), lock_name_of(B), lead_lock_name(B)]
    )

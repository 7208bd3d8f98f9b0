"""Processing runs of different mailboxes in parallel (one lease per mailbox), and the exclusive run
(re-matching, all mailboxes) that waits for them."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_store.db import transaction
from crm_store.models import Activity, ContactEmail, ItemSource, Mailbox, RawItem, SyncedItem
from sync_service import mailboxes
from sync_service.bootstrap import App
from sync_service.connectors.registry import open_connector
from sync_service.pipeline.fetch import sync_folder
from sync_service.pipeline.process import process_pending
from tests.support.builders import REP, REP2, maildir, message, seed_crm
from workers import tasks
from workers.locks import LocalLocks


def _shared_mail(count: int) -> list[bytes]:
    """Mail between the two reps and customers: every message is in both mailboxes; some senders are new
    people at a customer's domain (an auto-created contact, the same one from both mailboxes)."""
    return [
        message(
            f"shared{i}@acme.example",
            f"new{i % 7}@acme.example" if i % 3 == 0 else "wile@acme.example",
            [REP, REP2],
            f"Shared {i}",
        )
        for i in range(count)
    ]


def _own_mail(count: int, tag: str) -> list[bytes]:
    """Mail of one rep only, but from the same new people as the other rep's (auto-created contacts)."""
    return [message(f"{tag}{i}@acme.example", f"new{i % 7}@acme.example", [REP], f"{tag} {i}") for i in range(count)]


def _fetched(app: App, tmp_path: Path, mails: list[bytes], other: list[bytes] | None = None) -> list[int]:
    with transaction(app.sessions) as session:
        seed_crm(session)
        for (name, owner), box in zip((("alice", REP), ("bob", REP2)), (mails, other or mails), strict=True):
            mailboxes.add_mailbox(session, name, owner, f"maildir://{maildir(tmp_path / name, box)}", None, ())
    with app.sessions() as session:
        ids = list(session.scalars(select(Mailbox.id).order_by(Mailbox.id)))
    for mailbox_id, name in zip(ids, ("alice", "bob"), strict=True):
        sync_folder(app, mailbox_id, open_connector(f"maildir://{tmp_path / name}"), ".")
    return ids


def _counts(app: App) -> dict[str, int]:
    with app.sessions() as session:
        return {
            model.__name__: int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (SyncedItem, ItemSource, Activity, ContactEmail)
        } | {"pending": int(session.scalar(select(func.count()).where(RawItem.state == "pending")) or 0)}


def _in_parallel(app: App, ids: list[int]) -> None:
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(mailbox_id: int) -> None:
        try:
            start.wait()
            process_pending(app, mailbox_id=mailbox_id)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(mailbox_id,)) for mailbox_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors


def _new_contacts(app: App) -> list[str]:
    with app.sessions() as session:
        return sorted(
            session.scalars(select(ContactEmail.email).where(ContactEmail.email.like("new%@acme.example")))
        )


def test_two_mailboxes_processed_at_once_equal_one_after_the_other(
    app: App, database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("concurrent writers: PostgreSQL (SQLite serialises writers; embedded mode runs one at a time)")
    _in_parallel(app, _fetched(app, tmp_path, _shared_mail(120)))
    counts = _counts(app)
    # 120 emails, each one canonical item with a source in each mailbox, one activity; 7 new contacts.
    assert counts["SyncedItem"] == 120 and counts["ItemSource"] == 240 and counts["Activity"] == 120
    assert counts["pending"] == 0
    with app.sessions() as session:
        quarantined = session.scalar(select(func.count()).where(RawItem.state == "quarantined"))
    assert _new_contacts(app) == [f"new{i}@acme.example" for i in range(7)] and quarantined == 0


def test_a_new_person_writing_to_two_reps_becomes_one_contact(app: App, database_url: str, tmp_path: Path) -> None:
    """Different mail, the same unknown senders: no shared email row collides, only the contacts could."""
    if not database_url.startswith("postgresql"):
        pytest.skip("concurrent writers: PostgreSQL (SQLite serialises writers; embedded mode runs one at a time)")
    _in_parallel(app, _fetched(app, tmp_path, _own_mail(60, "a"), _own_mail(60, "b")))
    assert _new_contacts(app) == [f"new{i}@acme.example" for i in range(7)]
    assert _counts(app)["Activity"] == 120


class _Ctx:
    """The parts of a WorkerContext the leases use."""

    def __init__(self) -> None:
        self.locks = LocalLocks()

        class Options:
            lock_ttl = 0.6

        self.options = Options()


def test_mailbox_runs_wait_for_an_exclusive_run_and_it_waits_for_them() -> None:
    ctx = _Ctx()
    first = tasks._mailbox_lease(ctx, 1)  # type: ignore[arg-type]
    assert first is not None and tasks._mailbox_lease(ctx, 1) is None  # type: ignore[arg-type]
    second = tasks._mailbox_lease(ctx, 2)  # type: ignore[arg-type]
    assert second is not None  # another mailbox: in parallel
    threading.Timer(0.2, first.release).start()
    threading.Timer(0.3, second.release).start()
    exclusive = tasks._exclusive_lease(ctx)  # type: ignore[arg-type]
    assert exclusive is not None and not ctx.locks.any_locked(tasks.MAILBOX_PROCESS_PREFIX)
    assert tasks._mailbox_lease(ctx, 3) is None  # type: ignore[arg-type]
    exclusive.release()
    held = tasks._mailbox_lease(ctx, 3)  # type: ignore[arg-type]
    assert held is not None
    assert tasks._exclusive_lease(ctx) is None  # type: ignore[arg-type]  # gave up after lock_ttl
    assert not ctx.locks.is_locked(tasks.PROCESS_LOCK)

"""IMAP through the whole pipeline: a mailbox added with ``add_mailbox`` (secret encrypted) and ``run_once``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_store.db import transaction
from crm_store.migrate import upgrade
from crm_store.models import Mailbox, RawItem, SyncedItem
from crm_store.models.sync import DELETED
from crm_store.seed import seed_defaults
from sync_service import mailboxes
from sync_service.bootstrap import App, bootstrap
from sync_service.exports import export_activities
from sync_service.pipeline.runner import run_once, sync_mailbox
from tests.conftest import make_settings
from tests.imap.conftest import PASSWORD
from tests.support.builders import REP, REP2, maildir, message, seed_crm
from tests.support.dovecot import DovecotServer

INBOX = [
    message("m1@acme.example", "Wile <wile@acme.example>", [REP], "Rocket specs"),
    message("m2@friend", "pal@gmail.com", [REP], "Dinner?"),
    message("m3@news", "news@acme.example", [REP], "News", headers={"List-Unsubscribe": "<mailto:u@x>"}),
    message("m4@int", REP2, [REP], "Lunch"),
    message("m5@initrode", "rita@initrode.example", [REP], "Intro"),
    message("m6@globex", "mindy@globex.example", [REP], "Question"),
    message("m7@acme.example", "wile@acme.example", [REP], "Re: Rocket specs", in_reply_to="m1@acme.example"),
]
SENT = [
    message("s1@northwind", REP, ["wile@acme.example"], "Proposal",
            attachment=("offer.pdf", b"%PDF-1", "application/pdf")),
]


def add_imap(app: App, server: DovecotServer, name: str = "alice-imap", query: str = "") -> None:
    with transaction(app.sessions) as session:
        mailboxes.add_mailbox(session, name, REP, server.url("alice", query=query), PASSWORD, app.settings.secret_keys)


def comparable(app: App) -> list[dict[str, Any]]:
    """Activities without what differs between two databases or mailbox names."""
    with app.sessions() as session:
        rows = export_activities(session)
    return sorted(
        ({k: v for k, v in row.items() if k not in {"id", "mailboxes"}} for row in rows),
        key=lambda r: r["message_id"] or "",
    )


def count(app: App, model: type, *where: Any) -> int:
    with app.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def reference_app(tmp_path: Path) -> App:
    reference = bootstrap(make_settings(f"sqlite:///{tmp_path / 'reference.db'}", tmp_path / "reference-data"))
    upgrade(reference.engine)
    with transaction(reference.sessions) as session:
        seed_defaults(session)
        seed_crm(session)
    return reference


def test_imap_sync_logs_the_same_activities_as_a_maildir(keyed_app: App, dovecot: DovecotServer, tmp_path) -> None:
    dovecot.append("alice", INBOX)
    dovecot.append("alice", SENT, folder="Sent")
    add_imap(keyed_app, dovecot)
    with keyed_app.sessions() as session:
        stored = session.scalar(select(Mailbox.secret).where(Mailbox.name == "alice-imap"))
    assert stored is not None and PASSWORD.encode() not in stored  # encrypted at rest
    report = run_once(keyed_app)
    assert not report.failed, report.failed
    reference = reference_app(tmp_path)
    with transaction(reference.sessions) as session:
        source = f"maildir://{maildir(tmp_path / 'md', INBOX, sent=SENT)}"
        mailboxes.add_mailbox(session, "alice", REP, source, None, ())
    assert not run_once(reference).failed
    expected = comparable(reference)
    reference.close()
    assert comparable(keyed_app) == expected
    assert {a["message_id"] for a in expected} == {"m1@acme.example", "m5@initrode", "m6@globex", "m7@acme.example",
                                                   "s1@northwind"}
    with dovecot.client("alice") as box:  # the sync read everything and marked nothing seen
        box.folder.set("INBOX", readonly=True)
        assert box.uids("SEEN") == []
    again = run_once(keyed_app)
    assert sum(m.stored for m in again.mailboxes) == 0 and again.stats.logged == 0


def test_uidvalidity_change_resyncs_without_duplicates(keyed_app: App, dovecot: DovecotServer) -> None:
    dovecot.append("alice", INBOX)
    add_imap(keyed_app, dovecot, query="folders=INBOX")
    first = run_once(keyed_app)
    before = comparable(keyed_app)
    items = count(keyed_app, SyncedItem)
    dovecot.set_uidvalidity("alice", "INBOX", 31337)
    report = run_once(keyed_app)
    assert not report.failed
    assert sum(m.stored for m in report.mailboxes) == len(INBOX) and report.stats.logged == 0
    assert report.stats.duplicates == first.stats.logged + sum(first.stats.skipped.values())
    assert comparable(keyed_app) == before and count(keyed_app, SyncedItem) == items
    assert count(keyed_app, RawItem, RawItem.state == DELETED) == len(INBOX)  # the old UIDs, kept as history
    assert count(keyed_app, RawItem, RawItem.state != DELETED, RawItem.external_id.like("31337:%")) == len(INBOX)


def test_expunged_mail_keeps_its_activity(keyed_app: App, dovecot: DovecotServer) -> None:
    dovecot.append("alice", INBOX)
    add_imap(keyed_app, dovecot, query="folders=INBOX,Archive")
    run_once(keyed_app)
    before = comparable(keyed_app)
    with dovecot.client("alice") as box:
        box.folder.set("INBOX")
        first, second = box.uids()[:2]
        box.delete([first])
        box.move([second], "Archive")  # moved to another synced folder: the same Message-ID, no new activity
    report = run_once(keyed_app)
    assert not report.failed and report.stats.logged == 0 and report.stats.duplicates == 1
    assert sum(m.deleted for m in report.mailboxes) == 2
    assert comparable(keyed_app) == before


def test_server_restart_in_the_middle_of_a_sync(keyed_app: App, dovecot: DovecotServer) -> None:
    notes = [message(f"r{i}@acme.example", "wile@acme.example", [REP], f"Note {i}") for i in range(120)]
    dovecot.append("alice", notes)
    add_imap(keyed_app, dovecot, query="folders=INBOX")
    pages: list[int] = []

    def restart_after_first_page(stored: int) -> None:
        pages.append(stored)
        if len(pages) == 1:
            dovecot.restart()  # the next list/fetch finds the connection dead and reconnects

    report = run_once(keyed_app, on_page=restart_after_first_page)
    assert not report.failed, report.failed
    assert len(pages) == 3 and sum(pages) == 120  # batch_size 50: three pages, each stored once
    assert report.stats.logged == 120 and count(keyed_app, SyncedItem) == 120
    assert count(keyed_app, RawItem) == 120


def test_bad_password_fails_the_mailbox_without_showing_the_secret(keyed_app: App, dovecot: DovecotServer) -> None:
    with transaction(keyed_app.sessions) as session:
        url = dovecot.url("alice")
        mailboxes.add_mailbox(session, "wrong", REP, url, "not-the-Password-42", keyed_app.settings.secret_keys)
    report = run_once(keyed_app)
    [result] = report.mailboxes
    assert result.state == "failed" and "login failed" in (result.error or "")
    assert "not-the-Password-42" not in (result.error or "")


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_five_thousand_messages(keyed_app: App, dovecot: DovecotServer) -> None:
    dovecot.deliver("alice", (message(f"big{i}@test", "x@example.org", [REP], f"Bulk {i}", body="x" * 3000)
                              for i in range(5000)))
    add_imap(keyed_app, dovecot, query="folders=INBOX")
    with keyed_app.sessions() as session:
        mailbox = session.scalars(select(Mailbox)).one()
    result = sync_mailbox(keyed_app, mailbox)  # the fetch stage: list, fetch, store raw items with the cursors
    assert result.error is None and result.stored == 5000
    assert count(keyed_app, RawItem) == 5000
    assert sync_mailbox(keyed_app, mailbox).stored == 0

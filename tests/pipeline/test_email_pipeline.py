"""Emails through the whole pipeline: matching rules 1–5, documents, dedupe, idempotence, quarantine."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from crm_store.models import Activity, Document, Mailbox, QuarantineEntry, RawItem, ReviewItem, SyncedItem
from sync_service.bootstrap import App
from sync_service.exports import export_activities, export_documents, export_quarantine, export_review
from tests.support.blobs import lose_blob
from tests.support.builders import REP, REP2, maildir, message


def _count(app: App, model: type) -> int:
    with app.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _activities(app: App) -> dict[str, dict]:
    with app.sessions() as session:
        return {a["message_id"]: a for a in export_activities(session)}


def test_emails_are_matched_logged_and_skipped_with_reasons(app, crm, add_mailbox, sync, tmp_path: Path) -> None:
    inbox = [
        message("m1@acme.example", "Wile <WILE@acme.example>", [REP], "Rocket specs"),
        message("m2@friend", "pal@gmail.com", [REP], "Dinner?"),
        message("m3@news", "news@acme.example", [REP], "Newsletter", headers={"List-Unsubscribe": "<mailto:u@x>"}),
        message("m4@int", REP2, [REP], "Lunch"),
        message("m5@initrode", "rita@initrode.example", [REP], "Intro"),
        message("m6@globex", "mindy@globex.example", [REP], "Question"),
    ]
    add_mailbox("alice", maildir(tmp_path / "alice", inbox))
    report = sync()
    assert report.stats.logged == 3
    assert dict(report.stats.skipped) == {"unmatched": 1, "automated": 1, "internal-only": 1}
    acts = _activities(app)
    assert set(acts) == {"m1@acme.example", "m5@initrode", "m6@globex"}
    wile = acts["m1@acme.example"]
    assert (wile["account"], wile["opportunity"], wile["contacts"], wile["direction"]) == (
        "ACME",
        "Rockets",
        ["wile@acme.example"],
        "inbound",
    )
    assert wile["owner"] == REP and wile["mailboxes"] == ["alice"] and wile["type"] == "email"
    assert acts["m5@initrode"]["lead"] == "Rita Lead" and acts["m5@initrode"]["account"] is None
    # Mindy is no participant and Globex has two open opportunities: account only + review queue.
    assert acts["m6@globex"]["opportunity"] is None and acts["m6@globex"]["account"] == "Globex"
    with app.sessions() as session:
        review = export_review(session)
    assert [sorted(c["title"] for c in r["candidates"]) for r in review] == [["Domes", "Hammock lamps"]]
    with app.sessions() as session:
        skipped = dict(
            session.execute(
                select(SyncedItem.message_id, SyncedItem.skip_reason).where(SyncedItem.skip_reason.is_not(None))
            ).all()
        )
    assert skipped == {"m2@friend": "unmatched", "m3@news": "automated", "m4@int": "internal-only"}


def test_documents_are_stored_by_hash_with_safe_names(app, crm, add_mailbox, sync, tmp_path: Path) -> None:
    pdf = b"%PDF-1.4 proposal"
    sent = [
        message(
            "p1@northwind",
            REP,
            ["wile@acme.example"],
            "Proposal",
            attachment=("../../etc/pass\x00wd.pdf", pdf, "application/pdf"),
        )
    ]
    add_mailbox("alice", maildir(tmp_path / "alice", [], sent=sent))
    sync()
    with app.sessions() as session:
        docs = export_documents(session)
    by_name = {d["filename"]: d for d in docs}
    assert set(by_name) == {"Proposal.eml", "passwd.pdf"}
    attachment = next(d for d in docs if d["media_type"] == "application/pdf")
    assert attachment["size"] == len(pdf) and attachment["opportunity"] == "Rockets" and attachment["account"] == "ACME"
    assert app.blobs.get(attachment["sha256"]) == pdf
    stored = list((app.settings.data_dir / "blobs").rglob("*"))
    assert stored and not any("passwd" in p.name or p.name == "etc" for p in stored)
    act = _activities(app)["p1@northwind"]
    assert act["direction"] == "outbound" and sorted(act["documents"]) == sorted(by_name)


def test_same_message_in_two_mailboxes_is_one_activity(app, crm, add_mailbox, sync, tmp_path: Path) -> None:
    shared = message("shared@acme.example", "wile@acme.example", [REP], "Both of you", cc=[REP2])
    add_mailbox("alice", maildir(tmp_path / "alice", [shared]))
    add_mailbox("bob", maildir(tmp_path / "bob", [shared]), owner=REP2)
    report = sync()
    assert report.stats.logged == 1 and report.stats.duplicates == 1
    acts = _activities(app)
    assert len(acts) == 1 and acts["shared@acme.example"]["mailboxes"] == ["alice", "bob"]


def test_second_sync_adds_nothing_and_reads_only_changes(app, crm, add_mailbox, sync, tmp_path: Path) -> None:
    path = maildir(
        tmp_path / "alice", [message(f"r{i}@acme.example", "wile@acme.example", [REP], f"Re {i}") for i in range(5)]
    )
    add_mailbox("alice", path)
    sync()
    before = {m.__name__: _count(app, m) for m in (Activity, Document, RawItem, SyncedItem)}
    again = sync()
    assert again.mailboxes[0].stored == 0 and again.stats.logged == 0
    assert {m.__name__: _count(app, m) for m in (Activity, Document, RawItem, SyncedItem)} == before
    maildir(path, [message("new@acme.example", "wile@acme.example", [REP], "New one")])
    third = sync()
    assert third.mailboxes[0].stored == 1 and third.stats.logged == 1


def test_reply_follows_the_thread_to_its_opportunity(app, crm, add_mailbox, sync, tmp_path: Path) -> None:
    first = message("t1@globex", "hank@globex.example", [REP], f"Lamps [OPP-{crm['lamp']}]")
    reply = message(
        "t2@globex",
        "mindy@globex.example",
        [REP],
        "Re: Lamps",
        in_reply_to="t1@globex",
        at=datetime(2026, 11, 3, tzinfo=UTC),
    )
    add_mailbox("alice", maildir(tmp_path / "alice", [reply, first]))
    sync()
    acts = _activities(app)
    assert acts["t1@globex"]["opportunity"] == "Hammock lamps"
    assert acts["t2@globex"]["opportunity"] == "Hammock lamps"  # rule a, though Globex has two open ones
    assert _count(app, ReviewItem) == 0


def test_replies_in_a_later_run_find_the_thread_in_the_database(app, crm, add_mailbox, sync, tmp_path: Path) -> None:
    """Each batch looks up the threads its emails refer to (by Message-ID and by Outlook conversation)."""
    import base64

    root = bytes(range(22))
    thread_index = base64.b64encode(root).decode()
    first = message(
        "t1@globex", "hank@globex.example", [REP], f"Lamps [OPP-{crm['lamp']}]", headers={"Thread-Index": thread_index}
    )
    path = maildir(tmp_path / "alice", [first])
    add_mailbox("alice", path)
    sync()
    reply = message("t2@globex", "mindy@globex.example", [REP], "Re: Lamps", in_reply_to="<t1@globex>")
    # Outlook: no In-Reply-To, only the conversation (the root plus 5 bytes per reply).
    same_conversation = message(
        "t3@globex",
        "mindy@globex.example",
        [REP],
        "Lamps, again",
        headers={"Thread-Index": base64.b64encode(root + b"\x01\x02\x03\x04\x05").decode()},
    )
    unrelated = message("t4@globex", "mindy@globex.example", [REP], "Other", in_reply_to="<nothing@globex>")
    maildir(path, [reply, same_conversation, unrelated])
    sync()
    acts = _activities(app)
    assert acts["t2@globex"]["opportunity"] == "Hammock lamps"
    assert acts["t3@globex"]["opportunity"] == "Hammock lamps"
    assert acts["t4@globex"]["opportunity"] is None  # Globex has two open opportunities: review
    with app.sessions() as session:
        stored = session.scalar(select(SyncedItem.conversation_id).where(SyncedItem.message_id == "t1@globex"))
    assert stored == thread_index[:32]


def test_malformed_item_is_quarantined_and_the_rest_goes_on(app, crm, add_mailbox, sync, tmp_path: Path) -> None:
    path = maildir(tmp_path / "alice", [message("ok@acme.example", "wile@acme.example", [REP], "Fine")])
    (path / "new" / "1.broken").write_bytes(b"")
    add_mailbox("alice", path)
    report = sync()
    assert report.stats.logged == 1 and report.stats.quarantined == 1
    with app.sessions() as session:
        quarantine = export_quarantine(session)
    assert len(quarantine) == 1 and quarantine[0]["mailbox"] == "alice" and quarantine[0]["reason"]
    assert "\n" not in quarantine[0]["reason"]


def test_oversize_message_is_quarantined_with_the_limit(app, crm, add_mailbox, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from sync_service.pipeline.runner import run_once

    big = message("big@acme.example", "wile@acme.example", [REP], "Huge", body="x" * 5000)
    add_mailbox("alice", maildir(tmp_path / "alice", [big, message("s@acme.example", "wile@acme.example", [REP], "s")]))
    app.settings = replace(app.settings, max_message_bytes=2000)
    report = run_once(app)
    assert report.stats.logged == 1
    with app.sessions() as session:
        entry = session.scalars(select(QuarantineEntry)).one()
    assert "over the limit of 2000 bytes" in entry.reason
    assert [m.quarantined for m in report.mailboxes] == [1]  # counted where it happened: at the fetch
    from sync_service.cli.sync import print_report

    print_report(report)
    assert "logged 1 activities, updated 0, 0 already known, 1 quarantined" in capsys.readouterr().out
    assert sum(m.quarantined for m in run_once(app).mailboxes) == 0  # read again: not quarantined twice


def test_message_without_sender_or_recipients_is_quarantined(app, crm, add_mailbox, sync, tmp_path: Path) -> None:
    damaged = b"Return-Path: <x@y.example>\r\nX-Spam-Score: \x00\x01\xff\r\n\x00garbage\r\nSubject: Q4\r\n\r\nbody"
    add_mailbox("alice", maildir(tmp_path / "alice", [damaged]))
    report = sync()
    assert report.stats.quarantined == 1 and not report.stats.skipped
    with app.sessions() as session:
        [entry] = export_quarantine(session)
    assert "no sender and no recipient" in entry["reason"]


def test_shared_email_owner_does_not_depend_on_which_copy_came_first(app, crm, add_mailbox, sync, tmp_path) -> None:
    shared = message("own@acme.example", "wile@acme.example", [REP2], "For Bob, cc Alice", cc=[REP])
    add_mailbox("alice", maildir(tmp_path / "alice", [shared]))  # processed first: Alice's copy
    add_mailbox("bob", maildir(tmp_path / "bob", [shared]), owner=REP2)
    sync()
    assert _activities(app)["own@acme.example"]["owner"] == REP2  # the first rep in To, not the first mailbox


def test_missing_stored_bytes_quarantine_one_item_only(app, crm, add_mailbox, tmp_path: Path) -> None:
    from sync_service.connectors.registry import open_connector
    from sync_service.pipeline.fetch import sync_folder
    from sync_service.pipeline.process import process_pending

    box = maildir(tmp_path / "alice", [message(f"b{i}@acme.example", "wile@acme.example", [REP], f"S/{i}")
                                       for i in range(3)])
    add_mailbox("alice", box)
    with app.sessions() as session:
        mailbox_id = session.scalars(select(Mailbox.id)).one()
    sync_folder(app, mailbox_id, open_connector(f"maildir://{box}"), ".")
    with app.sessions() as session:
        victim = session.scalars(select(RawItem).order_by(RawItem.id)).first()
    assert victim is not None and victim.sha256
    lose_blob(app, victim.sha256)
    stats = process_pending(app)
    assert stats.logged == 2 and stats.quarantined == 1
    with app.sessions() as session:
        docs = [d["filename"] for d in export_documents(session)]
    assert sorted(docs) == ["S_1.eml", "S_2.eml"]  # "S/1" keeps its whole subject in the file name

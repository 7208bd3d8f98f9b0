"""What the body parser could not keep of a logged email — an attachment over CRM_MAX_ATTACHMENT_BYTES — is
quarantined with its reason (SPEC §6), while the email stays logged with what could be kept; processing the
item again neither duplicates the entry nor loses it, and a retry after the limit was raised completes it."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from crm_store.db import transaction
from crm_store.models import Document, QuarantineEntry, RawItem
from sync_service.bootstrap import App
from sync_service.dashboard.actions import retry_quarantined
from sync_service.exports import export_activities, export_quarantine
from sync_service.pipeline.process import process_pending
from tests.support.builders import REP, REP2, maildir, message

AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ACCOUNTS = "Name,Type,Domains,Territory,Owner\nACME,customer,acme.example,West,{rep}\n"


def _with_files(mid: str, sender: str, to: list[str], subject: str, *files: tuple[str, int], bcc: str = "") -> bytes:
    msg = EmailMessage()
    msg["Message-ID"], msg["From"], msg["To"], msg["Subject"] = f"<{mid}>", sender, ", ".join(to), subject
    msg["Date"] = format_datetime(AT)
    if bcc:
        msg["Bcc"] = bcc
    msg.set_content("See attached.")
    for name, size in files:
        msg.add_attachment(name.encode()[:1] * size, maintype="application", subtype="pdf", filename=name)
    return msg.as_bytes()


def _json(cli: Any, *args: str) -> Any:
    result = cli(*args, "--format", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_an_attachment_over_the_limit_is_quarantined_with_its_reason_and_the_email_is_kept(
    cli: Any, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("CRM_MAX_ATTACHMENT_BYTES", "1000")
    assert cli("init").code == 0
    (tmp_path / "accounts.csv").write_text(ACCOUNTS.format(rep=REP), encoding="utf-8")
    assert cli("import", "accounts", str(tmp_path / "accounts.csv")).code == 0
    box = maildir(
        tmp_path / "mail",
        [
            _with_files(
                "specs@acme.example", "wile@acme.example", [REP], "Specs", ("big.pdf", 5000), ("small.pdf", 99)
            ),
            # Private mail is not logged: its body is never read, and nothing of it is reported.
            _with_files("dinner@friend", "pal@gmail.com", [REP], "Dinner", ("photos.pdf", 5000)),
        ],
    )
    assert cli("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{box}").code == 0
    synced = cli("sync", "--once")
    assert synced.code == 0, synced.err
    [activity] = _json(cli, "export", "activities")
    assert (activity["subject"], sorted(activity["documents"])) == ("Specs", ["Specs.eml", "small.pdf"])
    [entry] = _json(cli, "export", "quarantine")
    [name] = [p.name for p in (box / "new").iterdir() if b"big.pdf" in p.read_bytes()]
    assert entry["mailbox"] == "alice" and entry["external_id"] in name and entry["at"]
    assert entry["reason"] == (
        "partly applied; skipped: attachment 'big.pdf' dropped: 5000 bytes, over the limit of 1000 bytes"
        " (CRM_MAX_ATTACHMENT_BYTES)"
    )

    assert cli("sync", "--once").code == 0  # nothing new: nothing changes
    assert _json(cli, "export", "quarantine") == [entry]
    assert len(_json(cli, "export", "activities")) == 1


def _documents(app: App) -> list[str]:
    with app.sessions() as session:
        return sorted(session.scalars(select(Document.filename)))


def test_processing_again_keeps_one_entry_and_a_retry_after_raising_the_limit_completes_the_email(
    app, crm, add_mailbox, sync, tmp_path: Path
) -> None:
    app.settings = replace(app.settings, max_attachment_bytes=1000)
    big = _with_files("big@acme.example", "wile@acme.example", [REP], "Drawings", ("big.pdf", 5000), ("a.pdf", 50))
    add_mailbox(
        "alice", maildir(tmp_path / "alice", [big, message("ok@acme.example", "wile@acme.example", [REP], "Ok")])
    )
    report = sync()
    assert (report.stats.logged, report.stats.quarantined) == (2, 1)
    assert _documents(app) == ["Drawings.eml", "Ok.eml", "a.pdf"]
    with app.sessions() as session:
        [entry] = export_quarantine(session)
        states = sorted(session.scalars(select(RawItem.state)))
    assert entry["mailbox"] == "alice"
    assert "'big.pdf' dropped: 5000 bytes, over the limit of 1000 bytes" in entry["reason"]
    assert states == ["done", "done"]  # applied: not picked up again by itself

    # Delivered again (at least once): still one entry with its reason, nothing doubled.
    with transaction(app.sessions) as session:
        session.execute(RawItem.__table__.update().values(state="pending", processed_at=None))
    again = process_pending(app)
    assert (again.logged, again.duplicates, again.quarantined) == (0, 2, 1)
    with app.sessions() as session:
        [same] = session.scalars(select(QuarantineEntry)).all()
        assert export_quarantine(session) == [entry | {"retries": 1}]
    assert _documents(app) == ["Drawings.eml", "Ok.eml", "a.pdf"]

    # The admin raises the limit and retries the item: the attachment is stored, the entry is over.
    app.settings = replace(app.settings, max_attachment_bytes=10_000)
    assert "left the quarantine" in retry_quarantined(app, same.id)
    assert _documents(app) == ["Drawings.eml", "Ok.eml", "a.pdf", "big.pdf"]
    with app.sessions() as session:
        assert export_quarantine(session) == []
        drawings = next(a for a in export_activities(session) if a["subject"] == "Drawings")
    assert sorted(drawings["documents"]) == ["Drawings.eml", "a.pdf", "big.pdf"]
    with app.sessions() as session:
        stored = session.scalars(select(Document.sha256).where(Document.filename == "big.pdf")).one()
    assert app.blobs.get(stored) == b"b" * 5000


def test_the_copy_that_logs_a_skipped_email_reports_what_it_could_not_keep(
    app, crm, add_mailbox, sync, tmp_path: Path
) -> None:
    """Bob's copy is internal-only; Alice's sent copy (Bcc: a contact) logs the email, with its problems."""
    app.settings = replace(app.settings, max_attachment_bytes=1000)
    alices = _with_files("q@northwind", REP, [REP2], "Quote", ("quote.pdf", 4000), bcc="wile@acme.example")
    bobs = _with_files("q@northwind", REP, [REP2], "Quote", ("quote.pdf", 4000))
    add_mailbox("bob", maildir(tmp_path / "bob", [bobs]), owner=REP2)
    add_mailbox("alice", maildir(tmp_path / "alice", [], sent=[alices]))
    assert dict(sync(names=["bob"]).stats.skipped) == {"internal-only": 1}
    later = sync(names=["alice"])
    assert (later.stats.logged, later.stats.quarantined) == (1, 1)
    with app.sessions() as session:
        [entry] = export_quarantine(session)
        [activity] = export_activities(session)
    assert entry["mailbox"] == "alice"
    assert "'quote.pdf' dropped: 4000 bytes, over the limit of 1000 bytes" in entry["reason"]
    assert activity["mailboxes"] == ["alice", "bob"] and activity["documents"] == ["Quote.eml"]

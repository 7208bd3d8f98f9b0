"""Dashboard fixtures: a CRM with a healthy mailbox, a failing one, a review item, a quarantined item."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import select

from crm_store.db import transaction
from crm_store.models import Mailbox, QuarantineEntry, RawItem, ReviewItem
from sync_service import mailboxes
from sync_service.bootstrap import App
from sync_service.dashboard.alerts import AlertConfig
from sync_service.dashboard.app import create_app
from sync_service.dashboard.auth import hash_password
from sync_service.dashboard.config import DashboardConfig
from sync_service.pipeline.process import process_pending
from sync_service.pipeline.runner import run_once
from tests.support.builders import REP, REP2, maildir, message, seed_crm
from workers.broker import setup_broker

PASSWORD = "correct horse battery staple"
TOKEN = "admin-token-0123456789abcdef"
METRICS_TOKEN = "metrics-token-0123456789abcdef"
MAILBOX_SECRET = "s3cr3t-mailbox-password-never-shown"
_HASH = hash_password(PASSWORD)  # scrypt is slow on purpose: once per test session


def html_message() -> bytes:
    """An email from a contact with a hostile HTML body (scripts, handlers, a tracking image)."""
    msg = EmailMessage()
    msg["Message-ID"] = "<html-1@acme.example>"
    msg["From"] = "wile@acme.example"
    msg["To"] = REP
    msg["Subject"] = "Rocket <b>specs</b> & prices"
    msg["Date"] = "Mon, 02 Nov 2026 10:00:00 +0000"
    msg.set_content("Plain version of the specs")
    msg.add_alternative(
        "<html><head><style>body{}</style><script>alert('x')</script></head><body>"
        "<p>Hello <b>Alice</b>, here are the <a href='javascript:alert(1)'>specs</a>"
        " and <a href='https://acme.example/specs'>the sheet</a>.</p>"
        "<img src='https://tracker.example/pixel.gif' onerror='alert(2)'>"
        "<div onclick='steal()'>Thrust: 9000 N</div><iframe src='https://evil.example'></iframe></body></html>",
        subtype="html",
    )
    return msg.as_bytes()


BROKEN_ICS = b"BEGIN:VCALENDAR\r\nthis is not a calendar"


@dataclass
class Seeded:
    app: App
    ids: dict[str, int]
    review_activity: int
    quarantine_id: int


def seed_dashboard(app: App, tmp_path: Path) -> Seeded:
    """alice: a Maildir with a linked email, an HTML email and one for the review queue; broken: a Maildir path
    that does not exist (its sync fails); bob (paused): a calendar file that cannot be parsed (quarantined)."""
    mail = maildir(
        tmp_path / "alice-mail",
        [
            message("m1@acme.example", "wile@acme.example", [REP], "Rockets: next steps"),
            message("m2@globex.example", "mindy@globex.example", [REP], "Which project is this?"),
            html_message(),
        ],
    )
    with transaction(app.sessions) as session:
        ids = seed_crm(session)
    with transaction(app.sessions) as session:
        mailboxes.add_mailbox(session, "alice", REP, f"maildir://{mail}", None, ())
        mailboxes.add_mailbox(session, "broken", REP, f"maildir://{tmp_path / 'no-such-dir'}", None, ())
        mailboxes.add_mailbox(
            session,
            "bob",
            REP2,
            "imaps://bob@mail.example/?folders=INBOX",
            MAILBOX_SECRET,
            (Fernet.generate_key().decode(),),
        )
    with transaction(app.sessions) as session:
        mailboxes.pause_mailbox(session, "bob")  # no IMAP server here: keep it out of the sync
    run_once(app, names=["alice", "broken"])
    with transaction(app.sessions) as session:
        bob = session.scalar(select(Mailbox.id).where(Mailbox.name == "bob"))
        sha = app.blobs.put(BROKEN_ICS)
        session.add(RawItem(mailbox_id=bob, folder="Calendar", external_id="team.ics", kind="calendar", sha256=sha))
    process_pending(app)
    with app.sessions() as session:
        review = session.scalars(select(ReviewItem.activity_id)).one()
        quarantine_id = session.scalars(select(QuarantineEntry.id)).one()
    return Seeded(app, ids, review, quarantine_id)


def make_dead_letter(app: App, mailbox: str) -> None:
    """A sync of ``mailbox`` that a worker fetched and gave up on: dramatiq dead-letters it."""
    with app.sessions() as session:
        mailbox_id = session.scalars(select(Mailbox.id).where(Mailbox.name == mailbox)).one()
    runtime = setup_broker(app.settings, app=app)
    try:
        runtime.send("sync_mailbox", mailbox_id)
        fetched = runtime.broker.do_fetch("sync", 1)  # type: ignore[attr-defined]
        runtime.broker.do_nack("sync", json.loads(fetched[0])["options"]["redis_message_id"])  # type: ignore[attr-defined]
    finally:
        runtime.close()


def make_config(**overrides: object) -> DashboardConfig:
    values: dict[str, object] = {
        "password_hash": _HASH,
        "token": TOKEN,
        "metrics_token": METRICS_TOKEN,
        "session_key": b"k" * 32,
        "alerts": AlertConfig(lag_seconds=3600),
    }
    values.update(overrides)
    return DashboardConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def seeded(app: App, tmp_path: Path) -> Seeded:
    return seed_dashboard(app, tmp_path)


@pytest.fixture
def client(seeded: Seeded) -> Iterator[TestClient]:
    with TestClient(create_app(seeded.app, make_config()), base_url="http://testserver") as test_client:
        yield test_client


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def log_in(client: TestClient, secret: str = PASSWORD) -> str:
    """Log in through the form; returns the CSRF token of the logged-in session's page."""
    page = client.get("/login")
    answer = client.post(
        "/login", data={"csrf_token": csrf_of(page.text), "password": secret, "next": "/"}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/").text)


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)

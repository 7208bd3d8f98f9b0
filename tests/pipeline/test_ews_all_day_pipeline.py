"""The same all-day series organised east of UTC, from an Exchange calendar (EWS) and from a calendar file or
an invitation email in another rep's mailbox, is one activity per occurrence (SPEC §3: same UID and
recurrence id), seen by both mailboxes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crm_store.db import transaction
from crm_store.migrate import upgrade
from crm_store.secrets import generate_key
from crm_store.seed import seed_defaults
from sync_service import mailboxes
from sync_service.bootstrap import App, bootstrap
from sync_service.exports import export_activities
from sync_service.pipeline.runner import run_once
from tests.conftest import make_settings
from tests.support.all_day_series import WILE, AllDaySeries, weekly
from tests.support.builders import REP, REP2, maildir, message, seed_crm
from tests.support.ews_server import SVC_PASSWORD, EwsServer, make_server, url_for


def serve_ews() -> Iterator[EwsServer]:
    server = make_server({REP, REP2})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def seeded_app(database_url: str, tmp_path: Path) -> Iterator[App]:
    """The test's database with the seeded CRM and a secret key (the EWS mailbox's password is stored)."""
    app = bootstrap(make_settings(database_url, tmp_path / "data", secret_keys=(generate_key(),)))
    upgrade(app.engine)
    with transaction(app.sessions) as session:
        seed_defaults(session)
        seed_crm(session)
    yield app
    app.close()


@pytest.fixture
def ews_server() -> Iterator[EwsServer]:
    yield from serve_ews()


@pytest.fixture
def ews_app(database_url: str, tmp_path: Path) -> Iterator[App]:
    yield from seeded_app(database_url, tmp_path)


def add_ews_mailbox(app: App, server: EwsServer, name: str = "alice", owner: str = REP) -> None:
    with transaction(app.sessions) as session:
        url = url_for(server, owner)
        mailboxes.add_mailbox(session, name, owner, url, SVC_PASSWORD, app.settings.secret_keys)


def add_maildir(app: App, name: str, path: Path, owner: str = REP2) -> None:
    with transaction(app.sessions) as session:
        mailboxes.add_mailbox(session, name, owner, f"maildir://{path}", None, ())


def sync(app: App) -> None:
    report = run_once(app)
    assert not report.failed, report.failed


def meetings(app: App, series: AllDaySeries) -> list[dict[str, Any]]:
    with app.sessions() as session:
        return [a for a in export_activities(session) if a["ical_uid"] == series.uid]


def calendar_file(path: Path, series: AllDaySeries) -> Path:
    box = maildir(path, [])
    (box / "calendar.ics").write_bytes(series.ics())
    return box


def invitation(path: Path, series: AllDaySeries) -> Path:
    invite = message(
        "fair-invite@northwind-sales.example", REP, [REP2, WILE], series.subject,
        attachment=("invite.ics", series.ics(method="REQUEST"), "text/calendar"),
    )  # fmt: skip
    return maildir(path, [invite])


@pytest.mark.parametrize("carrier", [calendar_file, invitation], ids=["ics", "invitation"])
def test_an_all_day_series_from_exchange_and_from_a_calendar_is_one_activity_per_occurrence(
    ews_app: App, ews_server: EwsServer, tmp_path: Path, carrier: Any
) -> None:
    series = weekly("Europe/Berlin")
    ews_server.store.add(REP, "calendar", "calendar", event=series.event())
    add_ews_mailbox(ews_app, ews_server)
    add_maildir(ews_app, "bob", carrier(tmp_path / "bob", series))
    sync(ews_app)
    found = meetings(ews_app, series)
    assert {a["recurrence_id"] for a in found} == set(series.expected())
    assert len(found) == len(series.expected())  # not one per source
    assert {tuple(a["mailboxes"]) for a in found} == {("alice", "bob")}
    assert {a["start"][:10] for a in found} == {day.isoformat() for day in series.expected().values()}
    cancelled = [a["recurrence_id"] for a in found if a["status"] == "cancelled"]
    assert cancelled == [series.original(i).isoformat() for i in series.cancelled]
    assert all(a["type"] == "meeting" and a["account"] == "ACME" for a in found)

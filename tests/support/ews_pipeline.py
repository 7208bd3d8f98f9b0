"""Set-ups the EWS all-day pipeline test and the upgrade test of migration 0015 share: the loopback EWS server,
a seeded database with a secret key, EWS and Maildir mailboxes, a run, the series' meetings as exported."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crm_store.db import transaction
from crm_store.migrate import upgrade
from crm_store.secrets import generate_key
from crm_store.seed import seed_defaults
from sync_service import mailboxes
from sync_service.bootstrap import App, bootstrap
from sync_service.exports import export_activities
from sync_service.pipeline.runner import run_once
from tests.conftest import make_settings
from tests.support.all_day_series import WILE, AllDaySeries
from tests.support.builders import REP, REP2, maildir, message, seed_crm
from tests.support.ews_server import SVC_PASSWORD, EwsServer, url_for


def seeded_app(database_url: str, tmp_path: Path) -> Iterator[App]:
    """The test's database with the seeded CRM and a secret key (the EWS mailbox's password is stored)."""
    app = bootstrap(make_settings(database_url, tmp_path / "data", secret_keys=(generate_key(),)))
    upgrade(app.engine)
    with transaction(app.sessions) as session:
        seed_defaults(session)
        seed_crm(session)
    yield app
    app.close()


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

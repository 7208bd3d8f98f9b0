"""End to end: an ``ews://`` mailbox on the loopback EWS server, synced by ``crm-sync sync --once`` (and by
``run_once``), gives the same CRM activities as the same messages and meetings in a Maildir."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_store.db import transaction
from crm_store.migrate import upgrade
from crm_store.models import Mailbox, RawItem
from crm_store.secrets import generate_key
from crm_store.seed import seed_defaults
from sync_service import mailboxes
from sync_service.bootstrap import App, bootstrap
from sync_service.exports import export_activities, export_contacts
from sync_service.pipeline.runner import run_once
from tests.conftest import make_settings
from tests.support import ews_scenario as scenario
from tests.support.builders import REP, message, seed_crm
from tests.support.ews_server import SVC_PASSWORD, EwsServer, url_for
from tests.support.ews_store import Person

Activity = dict[str, Any]


def _seeded(database_url: str, data_dir: Path, keys: tuple[str, ...] = ()) -> App:
    app = bootstrap(make_settings(database_url, data_dir, secret_keys=keys))
    upgrade(app.engine)
    with transaction(app.sessions) as session:
        seed_defaults(session)
        seed_crm(session)
    return app


@pytest.fixture
def ews_app(database_url: str, tmp_path: Path) -> Iterator[App]:
    """The test's database (SQLite or PostgreSQL), with the seeded CRM and a secret key."""
    app = _seeded(database_url, tmp_path / "data", (generate_key(),))
    yield app
    app.close()


@pytest.fixture
def reference(tmp_path: Path) -> list[Activity]:
    """The activities of the scenario read from a Maildir (+ calendar.ics), in a database of its own."""
    app = _seeded(f"sqlite:///{tmp_path / 'reference.db'}", tmp_path / "reference-data")
    try:
        box = scenario.fill_maildir(tmp_path / "alice-maildir")
        with transaction(app.sessions) as session:
            mailboxes.add_mailbox(session, "alice", REP, f"maildir://{box}", None, ())
        report = run_once(app)
        assert not report.failed, report.failed
        with app.sessions() as session:
            return export_activities(session)
    finally:
        app.close()


def _comparable(activities: list[Activity]) -> list[Activity]:
    rows = [{k: v for k, v in a.items() if k not in ("id", "mailboxes")} for a in activities]
    return sorted(rows, key=lambda a: (a["message_id"] or "", a["ical_uid"] or "", a["recurrence_id"] or ""))


def _activities(app: App) -> list[Activity]:
    with app.sessions() as session:
        return export_activities(session)


def _add_ews_mailbox(app: App, server: EwsServer) -> None:
    with transaction(app.sessions) as session:
        mailboxes.add_mailbox(session, "alice", REP, url_for(server, REP), SVC_PASSWORD, app.settings.secret_keys)


def test_sync_once_gives_the_same_activities_as_a_maildir(  # type: ignore[no-untyped-def]
    cli,
    database_url: str,
    tmp_path: Path,
    ews_server: EwsServer,
    reference: list[Activity],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenario.fill_ews(ews_server.store)
    assert cli("init").code == 0
    seeder = bootstrap(make_settings(database_url, tmp_path / "data"))
    with transaction(seeder.sessions) as session:
        seed_crm(session)
    monkeypatch.setenv("CRM_SECRET_KEY", generate_key())
    monkeypatch.setenv("EWS_SECRET", SVC_PASSWORD)
    added = cli(
        "mailbox", "add", "alice", "--owner", REP, "--source", url_for(ews_server, REP), "--secret-env", "EWS_SECRET"
    )
    assert added.code == 0, added.err
    listed = cli("mailbox", "list")
    assert "ews://" in listed.out and SVC_PASSWORD not in listed.out
    with seeder.sessions() as session:
        stored = session.scalar(select(Mailbox.secret))
    assert stored and SVC_PASSWORD not in str(stored)  # encrypted at rest
    seeder.close()
    synced = cli("sync", "--once")
    assert synced.code == 0, synced.err
    exported = cli("export", "activities", "--format", "json")
    activities = json.loads(exported.out)
    assert _comparable(activities) == _comparable(reference)
    assert {tuple(a["mailboxes"]) for a in activities} == {("alice",)}
    series = [a for a in activities if a["ical_uid"] == scenario.SERIES_UID]
    assert len(series) == 5 and sorted(a["status"] for a in series).count("cancelled") == 1
    emails = {a["message_id"]: a for a in activities if a["type"] == "email"}
    assert emails["s1@northwind-sales.example"]["documents"] and emails["e5@acme.example"]["opportunity"] == "Rockets"
    assert "e4@news.example" not in emails  # bulk mail is skipped as from a Maildir
    impersonated = {r.impersonated for r in ews_server.requests if r.operation != "ConvertId"}
    assert impersonated == {REP}


def test_lost_sync_state_resyncs_without_duplicates(ews_app: App, ews_server: EwsServer) -> None:
    scenario.fill_ews(ews_server.store)
    _add_ews_mailbox(ews_app, ews_server)
    assert not run_once(ews_app).failed
    before = _comparable(_activities(ews_app))
    ews_server.store.invalidate_sync_states()
    late = message("late@acme.example", scenario.WILE, [REP], "One more thing", at=scenario.NOW)
    ews_server.store.add(REP, "inbox", "message", mime=late)
    report = run_once(ews_app)
    assert not report.failed and report.stats.logged == 1
    activities = _activities(ews_app)
    assert [a for a in _comparable(activities) if a["message_id"] != "late@acme.example"] == before
    assert {tuple(a["mailboxes"]) for a in activities} == {("alice",)}
    with ews_app.sessions() as session:
        raw_count = session.scalar(select(func.count()).select_from(RawItem))
        distinct = session.scalar(select(func.count(func.distinct(RawItem.external_id))))
    assert raw_count == distinct  # every Exchange item stored once


def test_throttling_is_waited_out_by_the_worker_retry(ews_app: App, ews_server: EwsServer) -> None:
    scenario.fill_ews(ews_server.store)
    _add_ews_mailbox(ews_app, ews_server)
    ews_server.throttle(times=2, back_off_ms=50, operation="GetItem")
    report = run_once(ews_app)
    assert not report.failed, report.failed
    ops = ews_server.operations()
    assert ops.count("GetItem") >= 2 + 3  # two throttled answers, then the fetches of inbox, sent and calendar
    messages = {a["message_id"] for a in _activities(ews_app) if a["message_id"]}
    assert {"e1@acme.example", "e2@globex.example", "s1@northwind-sales.example"} <= messages
    with ews_app.sessions() as session:
        box = session.scalar(select(Mailbox))
        assert box is not None and box.state == "idle" and box.consecutive_failures == 0


def test_deleted_meetings_and_occurrences_are_cancelled(ews_app: App, ews_server: EwsServer) -> None:
    ids = scenario.fill_ews(ews_server.store)
    _add_ews_mailbox(ews_app, ews_server)
    assert not run_once(ews_app).failed
    first = scenario.SERIES_START.strftime("%Y-%m-%dT%H:%M:%SZ")
    ews_server.store.update_event(ids[scenario.SERIES_UID], deleted={scenario.DELETED, 1})
    ews_server.store.delete(ids["b-demo@northwind-sales.example"])
    assert not run_once(ews_app).failed
    by_key = {(a["ical_uid"], a["recurrence_id"]): a for a in _activities(ews_app) if a["ical_uid"]}
    assert by_key[(scenario.SERIES_UID, first)]["status"] == "cancelled"
    assert by_key[("b-demo@northwind-sales.example", None)]["status"] == "cancelled"
    assert sum(1 for k, a in by_key.items() if k[0] == scenario.SERIES_UID and a["status"] != "cancelled") == 3


def test_outlook_contacts_create_or_update_crm_contacts(ews_app: App, ews_server: EwsServer) -> None:
    store = ews_server.store
    store.add(
        REP,
        "contacts",
        "contact",
        person=Person(  # known by one of its addresses: empty fields are filled
            given="Wile",
            surname="Coyote",
            job_title="Chief Genius",
            emails=("WILE.private@gmail.com",),
            phones=(("MobilePhone", "(202) 555-0123"),),
        ),
    )
    store.add(
        REP,
        "contacts",
        "contact",
        person=Person(  # new, at ACME's domain: created (account-domains)
            given="Road", surname="Runner", company="ACME", emails=("road@acme.example",)
        ),
    )
    store.add(REP, "contacts", "contact", person=Person(given="Pal", surname="Private", emails=("pal@gmail.com",)))
    with transaction(ews_app.sessions) as session:
        mailboxes.add_mailbox(
            session,
            "alice",
            REP,
            url_for(ews_server, REP, folders="contacts"),
            SVC_PASSWORD,
            ews_app.settings.secret_keys,
        )
    report = run_once(ews_app)
    assert not report.failed and report.stats.contacts_created == 1
    with ews_app.sessions() as session:
        contacts = {c["name"]: c for c in export_contacts(session)}
    assert contacts["Wile Coyote"]["job_title"] == "Chief Genius"
    assert contacts["Wile Coyote"]["phones"] == ["+12025550123"]
    assert contacts["Road Runner"]["account"] == "ACME" and contacts["Road Runner"]["source"] == "sync"
    assert not any("pal@gmail.com" in c["emails"] for c in contacts.values())  # private stays private

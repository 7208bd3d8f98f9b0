"""Recurring series slide with the sync window (SPEC §4): occurrences that enter the window as days pass become
activities although the calendar object's bytes never change — from an .ics file, an invitation email, in a
``sync --once`` run and in the workers' mode — once a day, without duplicates, honouring the series'
exceptions, and leaving the occurrences that fell out of the window behind as they were."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crm_store.db import transaction
from crm_store.migrate import alembic_config, upgrade
from crm_store.models import RawItem
from sync_service import mailboxes
from sync_service.bootstrap import App
from sync_service.exports import export_activities
from sync_service.parsing.ical import parse_calendar
from sync_service.pipeline import series as series_module
from sync_service.pipeline.process import process_pending
from sync_service.pipeline.runner import SyncReport, run_once
from sync_service.values import SyncWindow
from tests.support.builders import REP, ics, maildir, message, vevent

# Noon, so that "an hour later" is the same UTC day and "a day later" the next one.
NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
LATER = NOW + timedelta(days=30)
FIRST = NOW - timedelta(days=2)  # the series' first occurrence
WILE = ("wile@acme.example",)
FMT = "%Y%m%dT%H%M%SZ"
WEEK = timedelta(weeks=1)


def rid(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def weekly_series() -> bytes:
    """Weekly from FIRST (occurrence n at NOW + 7n - 2 days), no end: occurrence 1 cancelled, 6 moved by a day
    and two hours, 7 an EXDATE, 8 cancelled. With the window 7 days back and 28 ahead: occurrences 0–4 are
    inside at NOW, 4–8 thirty days later."""
    master = ("RRULE:FREQ=WEEKLY", f"EXDATE:{(FIRST + 7 * WEEK):{FMT}}")
    return ics(
        vevent("wk", "Steering", FIRST, attendees=WILE, extra=master),
        vevent("wk", "Steering", FIRST + WEEK, attendees=WILE,
               extra=(f"RECURRENCE-ID:{(FIRST + WEEK):{FMT}}", "STATUS:CANCELLED")),
        vevent("wk", "Steering (moved)", FIRST + 6 * WEEK + timedelta(hours=26), attendees=WILE,
               extra=(f"RECURRENCE-ID:{(FIRST + 6 * WEEK):{FMT}}",)),
        vevent("wk", "Steering", FIRST + 8 * WEEK, attendees=WILE,
               extra=(f"RECURRENCE-ID:{(FIRST + 8 * WEEK):{FMT}}", "STATUS:CANCELLED")),
    )  # fmt: skip


def activities(app: App, uid: str = "wk") -> dict[str, dict[str, Any]]:
    """The series' activities by recurrence id."""
    with app.sessions() as session:
        return {a["recurrence_id"]: a for a in export_activities(session) if a["ical_uid"] == uid}


@pytest.fixture
def short_window(app: App) -> App:
    """The app with a sync window of 7 days back and 28 ahead."""
    app.settings = replace(app.settings, window_days_back=7, window_days_ahead=28)
    return app


@pytest.fixture
def sync(short_window: App) -> Callable[..., SyncReport]:
    def run(now: datetime) -> SyncReport:
        report = run_once(short_window, now=now)
        assert not report.failed, report.failed
        return report

    return run


def _add(app: App, box: Path, name: str = "alice") -> None:
    with transaction(app.sessions) as session:
        mailboxes.add_mailbox(session, name, REP, f"maildir://{box}", None, ())


def test_a_weekly_series_gets_the_occurrences_that_enter_the_window(short_window, crm, sync, tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = short_window
    box = maildir(tmp_path / "alice", [])
    (box / "calendar.ics").write_bytes(weekly_series())
    _add(app, box)
    sync(NOW)
    before = activities(app)
    assert {k: a["status"] for k, a in before.items()} == {
        rid(FIRST): "completed",
        rid(FIRST + WEEK): "cancelled",
        rid(FIRST + 2 * WEEK): "planned",
        rid(FIRST + 3 * WEEK): "planned",
        rid(FIRST + 4 * WEEK): "planned",
    }

    report = sync(LATER)  # the file did not change: nothing is fetched again
    assert (report.stats.logged, report.stats.updated, report.completed) == (3, 0, 3)
    after = activities(app)
    assert {k: a["status"] for k, a in after.items()} == {
        rid(FIRST): "completed",  # fell out of the window behind: kept as it was
        rid(FIRST + WEEK): "cancelled",  # … a cancelled one too
        rid(FIRST + 2 * WEEK): "completed",  # ended meanwhile
        rid(FIRST + 3 * WEEK): "completed",
        rid(FIRST + 4 * WEEK): "completed",
        rid(FIRST + 5 * WEEK): "planned",  # entered the window
        rid(FIRST + 6 * WEEK): "planned",  # entered the window, moved: at its new time
        rid(FIRST + 8 * WEEK): "cancelled",  # a cancelled occurrence entered the window: cancelled
    }  # occurrence 7 is an EXDATE: no activity
    moved = after[rid(FIRST + 6 * WEEK)]
    assert moved["subject"] == "Steering (moved)" and moved["start"] == rid(FIRST + 6 * WEEK + timedelta(hours=26))
    assert after[rid(FIRST + 5 * WEEK)]["start"] == rid(FIRST + 5 * WEEK)
    assert after[rid(FIRST + 5 * WEEK)]["contacts"] == ["wile@acme.example"]
    assert after[rid(FIRST + 5 * WEEK)]["mailboxes"] == ["alice"]
    assert {k: after[k]["id"] for k in before} == {k: a["id"] for k, a in before.items()}  # the same activities

    again = sync(LATER + timedelta(hours=1))
    assert (again.stats.logged, again.stats.updated, again.stats.cancelled) == (0, 0, 0)
    assert activities(app) == after  # nothing doubled, nothing changed


def test_each_series_is_read_again_at_most_once_a_day(short_window, crm, sync, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    app = short_window
    box = maildir(tmp_path / "alice", [message("m1@acme.example", "wile@acme.example", [REP], "Hello")])
    (box / "calendar.ics").write_bytes(weekly_series())
    (box / "single.ics").write_bytes(ics(vevent("one", "Demo", NOW + timedelta(days=3), attendees=WILE)))
    _add(app, box)
    sync(NOW)
    parsed: list[bytes] = []

    def counting(data: bytes, window: SyncWindow, **options: Any) -> Any:
        parsed.append(data)
        return parse_calendar(data, window, **options)

    monkeypatch.setattr(series_module, "parse_calendar", counting)
    sync(NOW + timedelta(hours=3))
    assert parsed == []  # the same day: nothing to do (one indexed query)
    sync(NOW + timedelta(days=1))
    assert parsed == [weekly_series()]  # the next day: the series only — not the single event, not the email
    sync(NOW + timedelta(days=1, hours=2))
    assert len(parsed) == 1
    with app.sessions() as session:
        rows = session.execute(select(RawItem.kind, RawItem.external_id, RawItem.expanded_to)).all()
    expanded = {(kind, name if kind == "calendar" else "mail"): value for kind, name, value in rows}
    assert expanded == {
        ("calendar", "ics:calendar.ics"): NOW + timedelta(days=1 + 28),
        ("calendar", "ics:single.ics"): None,
        ("message", "mail"): None,
    }


def test_a_longer_window_expands_the_series_at_once(short_window, crm, sync, tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = short_window
    box = maildir(tmp_path / "alice", [])
    (box / "calendar.ics").write_bytes(weekly_series())
    _add(app, box)
    sync(NOW)
    app.settings = replace(app.settings, window_days_ahead=45)  # CRM_SYNC_WINDOW_FUTURE_DAYS made longer
    assert sync(NOW + timedelta(hours=1)).stats.logged == 2
    assert sorted(activities(app)) == [rid(FIRST + n * WEEK) for n in range(7)]


def _invitation(mid: str, sequence: int, first: datetime) -> bytes:
    msg = EmailMessage()
    msg["Message-ID"] = f"<{mid}>"
    msg["From"] = "wile@acme.example"
    msg["To"] = REP
    msg["Subject"] = "Invitation: Weekly sync"
    msg["Date"] = (NOW - timedelta(days=3)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    msg.set_content("You are invited")
    event = vevent(
        "inv-wk@acme.example",
        "Weekly sync",
        first,
        organizer="wile@acme.example",
        attendees=(REP,),
        extra=(f"SEQUENCE:{sequence}", "RRULE:FREQ=WEEKLY"),
    )
    msg.add_alternative(ics(event, method="REQUEST").decode(), subtype="calendar", params={"method": "REQUEST"})
    return msg.as_bytes()


def test_a_recurring_invitation_by_email_slides_from_its_latest_version(short_window, crm, sync, tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = short_window
    box = maildir(tmp_path / "alice", [_invitation("inv1@acme.example", 0, FIRST)])
    _add(app, box)
    sync(NOW)
    assert sorted(activities(app, "inv-wk@acme.example")) == [rid(FIRST + n * WEEK) for n in range(5)]
    # The organizer moves the series a day later: a second invitation (the first stays in the mailbox).
    moved = FIRST + timedelta(days=1)
    maildir(box, [_invitation("inv2@acme.example", 1, moved)])
    sync(NOW)
    known = set(activities(app, "inv-wk@acme.example"))

    report = sync(LATER)
    acts = activities(app, "inv-wk@acme.example")
    entered = sorted(acts.keys() - known)
    assert entered == [rid(moved + n * WEEK) for n in range(5, 9)]  # from the latest invitation only
    assert report.stats.logged == 4
    assert all(acts[k]["status"] == "planned" and acts[k]["contacts"] == ["wile@acme.example"] for k in entered)
    assert sync(LATER + timedelta(hours=1)).stats.logged == 0


def test_series_stored_before_the_upgrade_are_expanded_again_once(short_window, crm, sync, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Migration 0010 marks the calendar items and invitations stored without ``expanded_to`` as expanded long
    ago: the next run reads each once; those without a series are unmarked."""
    from alembic import command

    app = short_window
    box = maildir(
        tmp_path / "alice",
        [_invitation("inv1@acme.example", 0, FIRST), message("m1@acme.example", "wile@acme.example", [REP], "Hi")],
    )
    (box / "calendar.ics").write_bytes(weekly_series())
    (box / "single.ics").write_bytes(ics(vevent("one", "Demo", NOW + timedelta(days=3), attendees=WILE)))
    _add(app, box)
    sync(NOW)
    cfg = alembic_config(app.engine.url.render_as_string(hide_password=False))
    with app.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0009")
    upgrade(app.engine)

    def marks() -> dict[str, datetime | None]:
        with app.sessions() as session:
            rows = session.execute(select(RawItem.external_id, RawItem.expanded_to)).all()
        return {name: value for name, value in rows if name.startswith("ics:")}

    long_ago = datetime(1970, 1, 1, tzinfo=UTC)
    found = marks()
    assert (found["ics:calendar.ics"], found["ics:single.ics"]) == (long_ago, long_ago)
    with app.sessions() as session:
        mail = dict(session.execute(select(RawItem.id, RawItem.expanded_to).where(RawItem.kind == "message")).all())
    # The invitation is marked, the plain email is not.
    assert sorted(mail.values(), key=lambda value: value is not None) == [None, long_ago]
    stats = process_pending(app, now=LATER)
    assert stats.logged == 3 + 4  # what entered the window: the calendar's series and the invitation's
    found = marks()
    assert (found["ics:calendar.ics"], found["ics:single.ics"]) == (LATER + timedelta(days=28), None)


def test_the_scheduler_queues_the_processing_of_series_the_window_moved_past(  # type: ignore[no-untyped-def]
    short_window, crm, tmp_path, redis_url
) -> None:
    """Workers' mode: nothing new is fetched, so nothing is pending; the scheduler still queues the mailbox's
    processing once its series are due, and the processing task expands them."""
    from workers import tasks
    from workers.queues import redis_queue_stats
    from workers.scheduler import Scheduler

    app = short_window
    box = maildir(tmp_path / "alice", [])
    (box / "calendar.ics").write_bytes(weekly_series())
    _add(app, box)
    assert not run_once(app, now=NOW).failed
    mailbox_id = _mailbox_id(app)
    app.settings = replace(app.settings, broker_url=redis_url)
    from workers.broker import setup_broker
    from workers.context import Hooks

    runtime = setup_broker(app.settings, app=app, hooks=Hooks(now=LATER))
    try:
        scheduler = Scheduler(runtime, interval=10**9)  # no sync falls due
        assert not scheduler.tick(NOW + timedelta(hours=1)).processing  # expanded today: nothing to do
        assert scheduler.tick(LATER).processing
        assert redis_queue_stats(runtime.redis)["process"]["ready"] == 1  # type: ignore[arg-type]
        stats = tasks.process_items(runtime.context, mailbox_id)
        assert stats is not None and stats.logged == 3
        assert len(activities(app)) == 8
        with app.sessions() as session:
            assert series_module.mailboxes_due(session, LATER, app.settings) == set()
    finally:
        runtime.close()


def _mailbox_id(app: App) -> int:
    from crm_store.models import Mailbox

    with app.sessions() as session:
        found = session.scalar(select(Mailbox.id).where(Mailbox.name == "alice"))
    assert found is not None
    return found


def test_the_parser_names_the_series_it_expanded() -> None:
    window = SyncWindow(NOW + timedelta(days=400), NOW + timedelta(days=401))  # no occurrence inside
    calendar = parse_calendar(
        weekly_series() + ics(vevent("one", "Demo", NOW, attendees=WILE)), window, max_occurrences=10
    )
    assert calendar.series == ("wk",)
    assert [e.uid for e in calendar.events] == ["one"]


def test_a_time_sliced_run_expands_one_series_at_least_and_leaves_the_rest(  # type: ignore[no-untyped-def]
    short_window, crm, sync, tmp_path, monkeypatch
) -> None:
    from sync_service.pipeline import process

    app = short_window
    box = maildir(tmp_path / "alice", [])
    (box / "a.ics").write_bytes(weekly_series())
    (box / "b.ics").write_bytes(weekly_series().replace(b"UID:wk", b"UID:wk2"))
    _add(app, box)
    sync(NOW)
    monkeypatch.setattr(process, "SLICE_PER_INDEX", 0)
    first = process_pending(app, now=LATER, time_slice=0)
    assert first.more and first.logged == 3  # one series, then the slice ended: the workers queue the rest
    second = process_pending(app, now=LATER, time_slice=0)
    assert not second.more and second.logged == 3
    assert len(activities(app, "wk")) == len(activities(app, "wk2")) == 8

"""All-day calendar events stay all-day (``activities.all_day``): through the sync and the JSON export, for
every occurrence of an all-day series, when an event is moved to or from all day, and across migration 0011."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import inspect, text

from crm_store.db import make_engine
from crm_store.migrate import alembic_config
from sync_service.bootstrap import App
from sync_service.dashboard.content import activity_detail
from sync_service.exports import export_activities
from tests.support.builders import REP, ics, maildir, message, vevent

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
DAY = (NOW + timedelta(days=3)).date()  # inside the sync window
WILE = ("wile@acme.example",)
ACCOUNTS = "Name,Type,Domains,Territory,Owner\nACME,customer,acme.example,West,{rep}\n"
CONTACTS = "First Name,Last Name,Company,E-mail Address\nWile,Coyote,ACME,wile@acme.example\n"


def midnight(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def all_day_event(uid: str, summary: str, first: date, days: int = 1, *, extra: tuple[str, ...] = ()) -> str:
    """A VEVENT with dates (``VALUE=DATE``); DTEND is the day after the last."""
    lines = [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{NOW:%Y%m%dT%H%M%SZ}",
        f"DTSTART;VALUE=DATE:{first:%Y%m%d}",
        f"DTEND;VALUE=DATE:{first + timedelta(days=days):%Y%m%d}",
        f"SUMMARY:{summary}",
        f"ORGANIZER:mailto:{REP}",
        *(f"ATTENDEE:mailto:{a}" for a in WILE),
        *extra,
        "END:VEVENT",
    ]
    return "\r\n".join(lines)


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    stamp = path.stat().st_mtime_ns + 1_000_000_000  # a visibly newer version, even on coarse clocks
    os.utime(path, ns=(stamp, stamp))


def _by_uid(app: App) -> dict[tuple[str, str | None], dict[str, Any]]:
    with app.sessions() as session:
        return {(a["ical_uid"], a["recurrence_id"]): a for a in export_activities(session) if a["ical_uid"]}


def test_the_export_says_which_events_are_all_day(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Through the command line: ``init``, imports, an ``ics://`` and a ``maildir://`` mailbox, ``sync --once``,
    ``export activities --format json``."""
    for kind, body in (("accounts", ACCOUNTS), ("contacts", CONTACTS)):
        (tmp_path / f"{kind}.csv").write_text(body.format(rep=REP), encoding="utf-8")
    assert cli("init").code == 0
    for kind in ("accounts", "contacts"):
        assert cli("import", kind, str(tmp_path / f"{kind}.csv")).code == 0
    feed = tmp_path / "calendar.ics"
    timed_start = NOW + timedelta(days=4, hours=1)
    feed.write_bytes(
        ics(
            all_day_event("fair", "Trade fair", DAY, days=2),
            vevent("demo", "Rocket demo", timed_start, attendees=WILE),
        )
    )
    box = maildir(tmp_path / "mail", [message("m1@acme.example", "wile@acme.example", [REP], "Specs")])
    assert cli("mailbox", "add", "cal", "--owner", REP, "--source", f"ics://{feed}").code == 0
    assert cli("mailbox", "add", "mail", "--owner", REP, "--source", f"maildir://{box}").code == 0
    result = cli("sync", "--once")
    assert result.code == 0, result.err
    exported = cli("export", "activities", "--format", "json")
    assert exported.code == 0, exported.err
    acts = {a["ical_uid"] or a["message_id"]: a for a in json.loads(exported.out)}
    fair, demo, email = acts["fair"], acts["demo"], acts["m1@acme.example"]
    assert (fair["all_day"], fair["start"], fair["end"]) == (True, midnight(DAY), midnight(DAY + timedelta(days=2)))
    assert fair["type"] == "meeting" and fair["account"] == "ACME"
    assert demo["all_day"] is False and demo["start"] == timed_start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert email["all_day"] is False
    # The field sits after the end, the others keep their order.
    keys = list(fair)
    assert keys[keys.index("end") + 1] == "all_day"


def test_every_occurrence_of_an_all_day_series_is_all_day(app: App, crm, add_mailbox, sync, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    box = maildir(tmp_path / "alice", [])
    weekly = all_day_event("weekly", "Site day", DAY, extra=("RRULE:FREQ=WEEKLY;COUNT=3",))
    (box / "calendar.ics").write_bytes(ics(weekly))
    add_mailbox("alice", box)
    sync()
    occurrences = sorted((a for (uid, _), a in _by_uid(app).items() if uid == "weekly"), key=lambda a: a["start"])
    assert [(a["all_day"], a["start"], a["end"]) for a in occurrences] == [
        (True, midnight(DAY + timedelta(weeks=n)), midnight(DAY + timedelta(weeks=n, days=1))) for n in range(3)
    ]
    assert all(a["recurrence_id"] for a in occurrences)


def test_a_moved_event_gains_and_loses_the_flag(app: App, crm, add_mailbox, sync, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    box = maildir(tmp_path / "alice", [])
    timed = NOW + timedelta(days=2)
    _write(box / "calendar.ics", ics(vevent("a", "Demo", timed, attendees=WILE)))
    add_mailbox("alice", box)
    sync()
    assert _by_uid(app)[("a", None)]["all_day"] is False
    _write(box / "calendar.ics", ics(all_day_event("a", "Demo", DAY, extra=("SEQUENCE:1",))))
    sync()
    moved = _by_uid(app)[("a", None)]
    assert (moved["all_day"], moved["start"], moved["end"]) == (True, midnight(DAY), midnight(DAY + timedelta(days=1)))
    with app.sessions() as session:
        assert activity_detail(session, app.blobs, moved["id"]).days == DAY.isoformat()
    _write(box / "calendar.ics", ics(vevent("a", "Demo", timed, attendees=WILE, extra=("SEQUENCE:2",))))
    sync()
    back = _by_uid(app)[("a", None)]
    assert back["all_day"] is False and back["start"] == timed.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(_by_uid(app)) == 1


def _migrate(engine: Any, revision: str, step: Callable[..., None] = command.upgrade) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        step(cfg, revision)


def test_migration_0011_adds_a_false_flag_and_drops_it_without_losing_links(database_url: str) -> None:
    """0011 on a database with activities: they get ``all_day`` false (a server default, so rows written
    without it get false too); the downgrade drops the column and keeps the activities' links."""
    engine = make_engine(database_url)
    _migrate(engine, "0010")
    stamp = {"at": datetime(2026, 1, 1, tzinfo=UTC)}
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO accounts (id, name, name_key, type, created_at) VALUES (1, 'ACME', 'acme', 'b2b', :at)"),
            stamp,
        )
        for activity_id, kind in ((1, "meeting"), (2, "email")):
            connection.execute(
                text(
                    "INSERT INTO activities (id, type, subject, status, opportunity_manual, lead_manual, body, origin,"
                    " start_at, end_at, created_at, updated_at) VALUES (:id, :type, 'x', 'planned', false, false, '',"
                    " 'sync', :at, :at, :at, :at)"
                ),
                {"id": activity_id, "type": kind, **stamp},
            )
            connection.execute(
                text("INSERT INTO activity_accounts (activity_id, account_id, manual) VALUES (:id, 1, false)"),
                {"id": activity_id},
            )
    _migrate(engine, "0011")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO activities (id, type, subject, status, opportunity_manual, lead_manual, body, origin,"
                " created_at, updated_at) VALUES (3, 'task', 'y', 'planned', false, false, '', 'user', :at, :at)"
            ),
            stamp,
        )
        flags = dict(connection.execute(text("SELECT id, all_day FROM activities ORDER BY id")).all())
    assert flags == {1: False, 2: False, 3: False}
    (column,) = (c for c in inspect(engine).get_columns("activities") if c["name"] == "all_day")
    assert not column["nullable"]
    _migrate(engine, "0010", command.downgrade)
    columns = {column["name"] for column in inspect(engine).get_columns("activities")}
    with engine.connect() as connection:
        links = connection.execute(text("SELECT activity_id FROM activity_accounts ORDER BY activity_id")).scalars()
        assert list(links) == [1, 2]
    engine.dispose()
    assert "all_day" not in columns and "end_at" in columns


def test_migration_0013_marks_the_all_day_events_stored_before_0011(database_url: str) -> None:
    """Stored before the flag existed, an all-day event kept UTC midnights a whole number of days apart."""
    from sqlalchemy.orm import Session

    from crm_store.models import Activity, SyncedItem

    engine = make_engine(database_url)
    _migrate(engine, "0012")
    day = datetime(2026, 11, 2, tzinfo=UTC)
    cases = {  # subject: (type, synced, start, end) → all day?
        "one day": ("meeting", True, day, day + timedelta(days=1), True),
        "three days": ("meeting", True, day, day + timedelta(days=3), True),
        "timed": ("meeting", True, day + timedelta(hours=9), day + timedelta(hours=10), False),
        "call at midnight": ("call", True, day, day + timedelta(minutes=30), False),
        "email at midnight": ("email", True, day, day, False),
        "a person's": ("meeting", False, day, day + timedelta(days=1), False),
    }
    with Session(engine) as session, session.begin():
        for number, (subject, (kind, synced, start, end, _)) in enumerate(cases.items()):
            item = SyncedItem(kind="event", dedupe_key=f"evt:{number}|", facts={}) if synced else None
            origin = "sync" if synced else "user"
            session.add(Activity(type=kind, subject=subject, status="planned", start_at=start, end_at=end,
                                 origin=origin, body="", item=item))  # fmt: skip
    _migrate(engine, "0013")
    with engine.connect() as connection:
        flags = dict(connection.execute(text("SELECT subject, all_day FROM activities")).all())
    engine.dispose()
    assert flags == {subject: case[-1] for subject, case in cases.items()}

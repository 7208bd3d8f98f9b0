"""Revision 0015: the all-day occurrences an older version stored from Exchange (EWS) one day early are
re-keyed, so the first sync after the upgrade neither doubles nor cancels them.

Each test syncs with the older connector (``all_day_original`` as it was: the UTC date of the original
start), takes the database back to 0014, upgrades it (0015 and on) and syncs with the fixed connector."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import select, update

from crm_store.db import transaction
from crm_store.migrate import MIGRATIONS, alembic_config
from crm_store.models import Activity, Mailbox, RawItem
from sync_service.bootstrap import App
from sync_service.connectors import ews_calendar
from sync_service.connectors.registry import open_connector
from sync_service.pipeline.fetch import sync_folder
from sync_service.pipeline.process import process_pending
from tests.support.all_day_series import TODAY, AllDaySeries, weekly
from tests.support.builders import REP
from tests.support.ews_pipeline import (
    add_ews_mailbox,
    add_maildir,
    calendar_file,
    meetings,
    sync,
)
from tests.support.ews_server import SVC_PASSWORD, EwsServer, url_for


def _day_early(original: datetime, zone: object) -> date:
    """What the connector did before 0015: the original start's UTC date."""
    return datetime.fromtimestamp(original.timestamp(), UTC).date()


def _as_before(monkeypatch: pytest.MonkeyPatch, action: Callable[[], Any]) -> Any:
    with monkeypatch.context() as older:
        older.setattr(ews_calendar, "all_day_original", _day_early)
        return action()


def _upgrade(app: App) -> None:
    """From the schema an older version left (0014) through 0015 to the newest."""
    cfg = alembic_config(app.engine.url.render_as_string(hide_password=False))
    with app.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0014")
        command.upgrade(cfg, "heads")


def _by_day(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    rows = {a["start"][:10]: a for a in found}
    assert len(rows) == len(found)
    return rows


def _summary(app: App, series: AllDaySeries) -> dict[str, tuple[int, str, str]]:
    """day → (activity id, status, recurrence id)"""
    return {day: (a["id"], a["status"], a["recurrence_id"]) for day, a in _by_day(meetings(app, series)).items()}


def _right(series: AllDaySeries) -> dict[str, str]:
    """day → the recurrence id the series has in an .ics (the local date of the original start)"""
    return {day.isoformat(): rid for rid, day in series.expected().items()}


def _cancelled(series: AllDaySeries) -> set[str]:
    return {series.day(i).isoformat() for i in series.cancelled}


def test_upgrade_keeps_each_occurrence_one_activity_with_its_id(
    ews_app: App, ews_server: EwsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    daily = AllDaySeries("tokyo-fair@northwind-sales.example", "Asia/Tokyo", TODAY + timedelta(days=3), 10, 1)
    everything = [weekly("Europe/Berlin"), weekly("Europe/London"), weekly("America/New_York"), daily]
    for series in everything:
        ews_server.store.add(REP, "calendar", "calendar", event=series.event())
    add_ews_mailbox(ews_app, ews_server)
    _as_before(monkeypatch, lambda: sync(ews_app))
    before = {s.uid: _summary(ews_app, s) for s in everything}
    wrong = {s.uid for s in everything if {d: r for d, (_, _, r) in before[s.uid].items()} != _right(s)}
    assert wrong == {s.uid for s in everything if s.iana != "America/New_York"}  # the bug, as it was
    with ews_app.sessions() as session:
        bytes_before = dict(session.execute(select(RawItem.external_id, RawItem.sha256)).all())

    _upgrade(ews_app)
    sync(ews_app)
    for series in everything:
        after = _summary(ews_app, series)
        assert {d: r for d, (_, _, r) in after.items()} == _right(series), series.iana
        assert {d: i for d, (i, _, _) in after.items()} == {d: i for d, (i, _, _) in before[series.uid].items()}
        assert {d for d, (_, status, _) in after.items() if status == "cancelled"} == _cancelled(series)
    with ews_app.sessions() as session:
        bytes_after = dict(session.execute(select(RawItem.external_id, RawItem.sha256)).all())
        assert session.scalars(select(RawItem.state).distinct()).all() == ["done"]
    # The EWS objects were read again on the first sync (same day): their bytes now carry the new keys.
    assert {uid for uid in bytes_after if bytes_after[uid] != bytes_before[uid]} == wrong

    snapshot = {s.uid: _summary(ews_app, s) for s in everything}
    _upgrade(ews_app)  # once more, on data already right: nothing changes
    sync(ews_app)
    assert {s.uid: _summary(ews_app, s) for s in everything} == snapshot


def test_upgrade_merges_the_occurrences_that_were_doubled(
    ews_app: App, ews_server: EwsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same series also in Bob's calendar file: each occurrence was two activities. One of the two is kept:
    the one a person worked on (its id and result stay); when both were worked on, both stay."""
    series = weekly("Europe/Berlin")
    ews_server.store.add(REP, "calendar", "calendar", event=series.event())
    add_ews_mailbox(ews_app, ews_server)
    add_maildir(ews_app, "bob", calendar_file(tmp_path / "bob", series))
    _as_before(monkeypatch, lambda: sync(ews_app))
    doubled = meetings(ews_app, series)
    assert len(doubled) == 2 * len(series.expected())
    from_ews = {a["start"][:10]: a["id"] for a in doubled if a["mailboxes"] == ["alice"]}
    from_file = {a["start"][:10]: a["id"] for a in doubled if a["mailboxes"] == ["bob"]}
    worked, both = sorted(from_ews)[10], sorted(from_ews)[12]
    with transaction(ews_app.sessions) as session:
        ids = [from_ews[worked], from_ews[both], from_file[both]]
        session.execute(update(Activity).where(Activity.id.in_(ids)).values(result="Held"))
    stored = _ews_bytes(ews_app)

    _upgrade(ews_app)
    sync(ews_app)
    assert _ews_bytes(ews_app) != stored  # read again from Exchange, with the new keys
    found = meetings(ews_app, series)
    by_day: dict[str, list[dict[str, Any]]] = {}
    for activity in found:
        by_day.setdefault(activity["start"][:10], []).append(activity)
    assert set(by_day) == set(_right(series))
    assert {day for day, copies in by_day.items() if len(copies) > 1} == {both}
    for day, copies in by_day.items():
        assert {a["recurrence_id"] for a in copies} == {_right(series)[day]}, day
        assert {a["status"] == "cancelled" for a in copies} == {day in _cancelled(series)}, day
    kept = {day: copies[0]["id"] for day, copies in by_day.items() if day != both}
    assert kept[worked] == from_ews[worked]  # the one worked on
    assert all(kept[day] == from_file[day] for day in kept if day != worked)
    assert {a["id"] for a in by_day[both]} == {from_ews[both], from_file[both]}
    assert {tuple(a["mailboxes"]) for day in kept for a in by_day[day]} == {("alice", "bob")}
    assert {a["result"] for a in found if a["id"] in ids} == {"Held"}


def _ews_bytes(app: App) -> str | None:
    with app.sessions() as session:
        return session.scalars(
            select(RawItem.sha256).join(Mailbox, Mailbox.id == RawItem.mailbox_id).where(Mailbox.name == "alice")
        ).one()


def test_an_ews_calendar_object_waiting_at_the_upgrade_is_read_again(
    ews_app: App, ews_server: EwsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fetched but not processed before the upgrade: its bytes hold the old keys. They are never processed
    (a worker that processes what waits before it syncs would double and cancel the series); the next sync
    reads the series again, with the change it held."""
    series = weekly("Europe/Berlin")
    item_id = ews_server.store.add(REP, "calendar", "calendar", event=series.event())
    add_ews_mailbox(ews_app, ews_server)
    _as_before(monkeypatch, lambda: sync(ews_app))
    before = _summary(ews_app, series)
    event = series.event()
    ews_server.store.update_event(item_id, exceptions={**event.exceptions, 30: {"cancelled": True}})
    with ews_app.sessions() as session:
        mailbox_id = session.scalars(select(Mailbox.id)).one()
    connector = open_connector(url_for(ews_server, REP), SVC_PASSWORD)
    try:
        _as_before(monkeypatch, lambda: sync_folder(ews_app, mailbox_id, connector, "calendar"))
    finally:
        connector.close()
    with ews_app.sessions() as session:
        assert session.scalars(select(RawItem.state)).all() == ["pending"]

    _upgrade(ews_app)
    process_pending(ews_app)  # what waits is processed first
    sync(ews_app)
    after = _summary(ews_app, series)
    assert {d: i for d, (i, _, _) in after.items()} == {d: i for d, (i, _, _) in before.items()}
    assert {d: r for d, (_, _, r) in after.items()} == _right(series)
    now_cancelled = {series.day(30).isoformat()}
    assert {d for d, (_, status, _) in after.items() if status == "cancelled"} == _cancelled(series) | now_cancelled


def _rule() -> Callable[[list[int | None]], list[bool]]:
    path = MIGRATIONS / "versions" / "0015_ews_all_day_recurrence_ids.py"
    spec = importlib.util.spec_from_file_location("migration_0015", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shifted: Callable[[list[int | None]], list[bool]] = module.shifted
    return shifted


@pytest.mark.parametrize(
    ("evidence", "decided"),
    [
        ([1, 1, 1, 1], [True] * 4),  # east of UTC
        ([0, 0, 0], [False] * 3),  # west of UTC
        ([0, 0, 0, 1, 1, 1], [False] * 3 + [True] * 3),  # London: a DST change inside the series stays
        ([1, 1, 0, 1, 1], [True] * 5),  # one occurrence moved a day earlier, east of UTC
        ([0, 0, 1, 0, 0], [False] * 5),  # one occurrence moved a day later, west of UTC
        ([1, None, 1], [True] * 3),  # moved further: its neighbours decide
        ([None], [False]),  # nothing to go by: left alone
        ([1, 0], [True, False]),  # a tie: each its own evidence
    ],
)
def test_the_rule_deciding_which_occurrences_were_shifted(evidence: list[int | None], decided: list[bool]) -> None:
    assert _rule()(evidence) == decided

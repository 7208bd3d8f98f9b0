"""The same all-day series organised east of UTC, from an Exchange calendar (EWS) and from a calendar file or
an invitation email in another rep's mailbox, is one activity per occurrence (SPEC §3: same UID and
recurrence id), seen by both mailboxes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sync_service.bootstrap import App
from tests.support.all_day_series import weekly
from tests.support.builders import REP
from tests.support.ews_pipeline import (
    add_ews_mailbox,
    add_maildir,
    calendar_file,
    invitation,
    meetings,
    sync,
)
from tests.support.ews_server import EwsServer


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

"""A time-sliced processing run (what a Redis worker does for one mailbox): it stops after the batch that
ends its slice, leaves the rest pending, and the next run goes on from there."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from crm_store.models import Mailbox, RawItem
from sync_service.bootstrap import App
from sync_service.connectors.registry import open_connector
from sync_service.exports import export_activities
from sync_service.pipeline import process
from sync_service.pipeline.fetch import sync_folder
from sync_service.pipeline.process import count_pending, process_pending
from tests.support.builders import REP, maildir, message


def _fetched(app: App, add_mailbox, tmp_path: Path, count: int) -> None:  # type: ignore[no-untyped-def]
    mails = [message(f"s{i}@acme.example", "wile@acme.example", [REP], f"Specs {i}") for i in range(count)]
    box = maildir(tmp_path / "alice", mails)
    add_mailbox("alice", box)
    with app.sessions() as session:
        mailbox_id = session.scalars(select(Mailbox.id)).one()
    sync_folder(app, mailbox_id, open_connector(f"maildir://{box}"), ".")


def _pending(app: App) -> int:
    with app.sessions() as session:
        return count_pending(session)


def test_each_run_ends_with_its_slice_and_the_next_goes_on(
    app, crm, add_mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.settings = replace(app.settings, batch_size=5)
    monkeypatch.setattr(process, "SLICE_PER_INDEX", 0)  # no floor: the slice is exactly what is asked
    _fetched(app, add_mailbox, tmp_path, 12)
    runs = []
    while True:
        stats = process_pending(app, time_slice=0)  # a slice of 0 s: one batch per run
        runs.append((stats.logged, stats.more))
        if not stats.more:
            break
    # 5, 5 and 2 items; a run that ends its slice looks whether anything is left
    assert runs == [(5, True), (5, True), (2, False)]
    assert _pending(app) == 0
    with app.sessions() as session:
        assert Counter(session.scalars(select(RawItem.state))) == {"done": 12}
        assert sorted(a["subject"] for a in export_activities(session)) == sorted(f"Specs {i}" for i in range(12))


def test_without_a_slice_one_run_does_everything(app, crm, add_mailbox, tmp_path: Path) -> None:
    app.settings = replace(app.settings, batch_size=5)
    _fetched(app, add_mailbox, tmp_path, 12)
    stats = process_pending(app)
    assert (stats.logged, stats.more, _pending(app)) == (12, False, 0)


def test_a_slice_lasts_at_least_a_multiple_of_the_index_build(
    app, crm, add_mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large CRM makes the candidate index slow to build: a slice never shrinks below SLICE_PER_INDEX times
    that, so the start-up stays a small share of each run."""
    app.settings = replace(app.settings, batch_size=5)
    _fetched(app, add_mailbox, tmp_path, 12)
    monkeypatch.setattr(process, "SLICE_PER_INDEX", 1_000_000)
    stats = process_pending(app, time_slice=0)
    assert (stats.logged, stats.more, _pending(app)) == (12, False, 0)

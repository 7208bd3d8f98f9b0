"""A processing run that took many raw items out of waiting refreshes the planner's statistics of the raw
items (PostgreSQL ``ANALYZE``), so the next runs' waiting-items queries use the state index at once instead
of reading the whole table until autovacuum gets to it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text

from crm_store.models import Mailbox
from sync_service.bootstrap import App
from sync_service.connectors.registry import open_connector
from sync_service.pipeline import pending
from sync_service.pipeline.fetch import sync_folder
from sync_service.pipeline.pending import refresh_statistics
from sync_service.pipeline.process import process_pending
from tests.support.builders import REP, maildir, message


def _deliver(app: App, add_mailbox, tmp_path: Path, name: str, count: int) -> None:  # type: ignore[no-untyped-def]
    box = maildir(tmp_path / name, [message(f"{name}{i}@acme.example", "wile@acme.example", [REP], f"Quote {i}")
                                    for i in range(count)])
    add_mailbox(name, box)
    with app.sessions() as session:
        mailbox_id = session.scalars(select(Mailbox.id).where(Mailbox.name == name)).one()
    sync_folder(app, mailbox_id, open_connector(f"maildir://{box}"), ".")


def _analyses(app: App) -> int:
    """How many times the raw items were analysed by hand (``ANALYZE``; autovacuum's are counted apart)."""
    with app.engine.connect() as conn:  # a transaction of its own: the statistics as of now
        count = conn.scalar(text("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'raw_items'"))
    return int(count or 0)


def test_a_large_run_analyses_the_raw_items_and_a_small_one_does_not(
    app: App, crm, add_mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    if app.engine.dialect.name != "postgresql":
        assert not refresh_statistics(app.engine, app.sessions, 10**6)  # SQLite: nothing to refresh
        return
    monkeypatch.setattr(pending, "ANALYZE_AT_LEAST", 5)
    _deliver(app, add_mailbox, tmp_path, "alice", 12)
    before = _analyses(app)
    assert process_pending(app).logged == 12
    assert _analyses(app) == before + 1
    _deliver(app, add_mailbox, tmp_path, "bob", 3)
    assert process_pending(app).logged == 3  # under ANALYZE_AT_LEAST
    assert _analyses(app) == before + 1


def test_a_run_that_changed_little_of_a_large_table_does_not_analyse(
    app: App, crm, add_mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    if app.engine.dialect.name != "postgresql":
        pytest.skip("the planner statistics are PostgreSQL's")
    monkeypatch.setattr(pending, "ANALYZE_AT_LEAST", 1)
    _deliver(app, add_mailbox, tmp_path, "alice", 20)
    with app.engine.begin() as conn:
        conn.execute(text("ANALYZE raw_items"))  # the table is known to hold 20 rows
    before = _analyses(app)
    monkeypatch.setattr(pending, "ANALYZE_SHARE", 0.5)
    assert not refresh_statistics(app.engine, app.sessions, 9)  # under half of 20
    assert _analyses(app) == before
    assert refresh_statistics(app.engine, app.sessions, 10)
    assert _analyses(app) == before + 1


def test_a_failed_analysis_does_not_fail_the_run(
    app: App, crm, add_mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture  # type: ignore[no-untyped-def]
) -> None:
    from sqlalchemy.exc import OperationalError

    from sync_service.pipeline import process

    def refuse(*_args: object) -> bool:
        raise OperationalError("ANALYZE raw_items", {}, Exception("canceling statement due to lock timeout"))

    monkeypatch.setattr(process, "refresh_statistics", refuse)
    _deliver(app, add_mailbox, tmp_path, "alice", 3)
    assert process_pending(app).logged == 3  # the items are processed and committed; the run ends normally
    assert "could not analyse the raw items after 3 were processed" in caplog.text

"""A database that is not at the code's schema (a worker of a new version before `crm-sync init` ran) is no
item's fault: the processing stops and leaves the items pending, instead of quarantining each one in turn."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from crm_store.models import QuarantineEntry, RawItem
from sync_service.bootstrap import App
from sync_service.pipeline.process import process_pending
from tests.pipeline.test_email_copies import _fetch
from tests.support.builders import maildir, message


def _count(app: App, model: type) -> int:
    with app.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_missing_column_stops_the_processing_and_quarantines_nothing(
    app: App, crm: dict[str, int], add_mailbox: Callable[..., None], tmp_path: Path
) -> None:
    mails = [
        message(f"m{i}@acme.example", "wile@acme.example", ["alice@northwind-sales.example"], f"M{i}") for i in range(5)
    ]
    path = maildir(tmp_path / "alice", mails)
    add_mailbox("alice", path)
    _fetch(app, "alice", path)
    with app.engine.begin() as connection:  # as if this code ran on a database one migration behind
        connection.execute(text("ALTER TABLE activities DROP COLUMN all_day"))
    with pytest.raises(SQLAlchemyError, match="all_day"):
        process_pending(app)
    assert _count(app, QuarantineEntry) == 0
    with app.sessions() as session:
        assert session.scalar(select(func.count()).where(RawItem.processed_at.is_(None))) == 5  # still pending
    with app.engine.begin() as connection:  # `crm-sync init`
        connection.execute(text("ALTER TABLE activities ADD COLUMN all_day BOOLEAN NOT NULL DEFAULT false"))
    assert process_pending(app).logged == 5
    assert _count(app, QuarantineEntry) == 0

"""Fixtures for the process tests: the seeded CRM, mailboxes of Maildir + .ics, the real sync, exports."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crm_store.db import transaction
from sync_service import mailboxes
from sync_service.bootstrap import App
from sync_service.pipeline.runner import SyncReport, run_once
from tests.support.builders import REP, seed_crm


@pytest.fixture(autouse=True)
def _fresh_now(request: pytest.FixtureRequest) -> None:
    """Test modules place items relative to their ``NOW``: set it as each test starts, not at collection
    (a long run would leave "an hour from now" in the past)."""
    if hasattr(request.module, "NOW"):
        request.module.NOW = datetime.now(UTC).replace(second=0, microsecond=0)


@pytest.fixture
def crm(app: App) -> dict[str, int]:
    with transaction(app.sessions) as session:
        return seed_crm(session)


@pytest.fixture
def alice_box(app: App, tmp_path: Path) -> Path:
    """Alice's mailbox folder (Maildir + calendar.ics), registered as a mailbox."""
    box = tmp_path / "alice"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True, exist_ok=True)
    with transaction(app.sessions) as session:
        mailboxes.add_mailbox(session, "alice", REP, f"maildir://{box}", None, ())
    return box


@pytest.fixture
def sync(app: App) -> Callable[..., SyncReport]:
    def run(**kwargs: object) -> SyncReport:
        report = run_once(app, **kwargs)  # type: ignore[arg-type]
        assert not report.failed, report.failed
        assert report.stats.quarantined == 0
        return report

    return run

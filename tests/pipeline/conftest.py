from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crm_store.db import transaction
from sync_service import mailboxes
from sync_service.bootstrap import App
from sync_service.pipeline.runner import SyncReport, run_once
from tests.support.builders import REP, seed_crm
from tests.support.ews_pipeline import seeded_app
from tests.support.ews_server import EwsServer, serve_ews


@pytest.fixture
def crm(app: App) -> dict[str, int]:
    with transaction(app.sessions) as session:
        return seed_crm(session)


@pytest.fixture
def add_mailbox(app: App) -> Callable[[str, Path, str], None]:
    def add(name: str, path: Path, owner: str = REP) -> None:
        with transaction(app.sessions) as session:
            mailboxes.add_mailbox(session, name, owner, f"maildir://{path}", None, ())

    return add


@pytest.fixture
def sync(app: App) -> Callable[..., SyncReport]:
    def run(**kwargs: object) -> SyncReport:
        report = run_once(app, **kwargs)  # type: ignore[arg-type]
        assert not report.failed, report.failed
        return report

    return run


@pytest.fixture
def ews_server() -> Iterator[EwsServer]:
    """The loopback EWS server holding both reps' mailboxes."""
    yield from serve_ews()


@pytest.fixture
def ews_app(database_url: str, tmp_path: Path) -> Iterator[App]:
    """The test's database, seeded, with a secret key (an EWS mailbox's password is stored)."""
    yield from seeded_app(database_url, tmp_path)

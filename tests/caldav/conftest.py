"""Fixtures for the CalDAV tests: a real Radicale per test, with a user whose password the connector uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_store.db import transaction
from crm_store.migrate import upgrade
from crm_store.seed import seed_defaults
from sync_service.bootstrap import App, bootstrap
from tests.conftest import make_settings
from tests.support.builders import seed_crm
from tests.support.radicale import RadicaleServer

PASSWORD = "cal-Secret-77"


@pytest.fixture
def radicale() -> Iterator[RadicaleServer]:
    server = RadicaleServer({"alice": PASSWORD})
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def keyed_app(database_url: str, tmp_path: Path) -> Iterator[App]:
    """A migrated, seeded app with the test CRM and a ``CRM_SECRET_KEY`` (to store the CalDAV password)."""
    from crm_store.secrets import generate_key

    application = bootstrap(make_settings(database_url, tmp_path / "data", secret_keys=(generate_key(),)))
    upgrade(application.engine)
    with transaction(application.sessions) as session:
        seed_defaults(session)
        seed_crm(session)
    yield application
    application.close()

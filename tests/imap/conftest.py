"""Fixtures for the IMAP tests: a real Dovecot on 127.0.0.1 per test (it starts in well under a second)."""

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
from tests.support.dovecot import DovecotServer

PASSWORD = "s3cret-Pa55"
TOKEN = "ya29.test-access-token"


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    server = DovecotServer({"alice": PASSWORD, "bob": "bob-pass"}, oauth_tokens={TOKEN: "alice"})
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def secret_key() -> str:
    from crm_store.secrets import generate_key

    return generate_key()


@pytest.fixture
def keyed_app(database_url: str, tmp_path: Path, secret_key: str) -> Iterator[App]:
    """Like ``app`` (migrated, seeded, plus the test CRM) but with a ``CRM_SECRET_KEY`` to store IMAP passwords."""
    application = bootstrap(make_settings(database_url, tmp_path / "data", secret_keys=(secret_key,), batch_size=50))
    upgrade(application.engine)
    with transaction(application.sessions) as session:
        seed_defaults(session)
        seed_crm(session)
    yield application
    application.close()

"""Fixtures for the Microsoft Graph connector tests: a running fake Graph / Entra ID server over loopback TLS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crm_store.secrets import generate_key
from sync_service.bootstrap import App, bootstrap
from sync_service.connectors.base import ChangePage, RawItem
from sync_service.connectors.graph import GraphConnector
from tests.conftest import make_settings
from tests.support.builders import REP, seed_crm
from tests.support.graph_data import FakeMailbox
from tests.support.graph_server import FakeGraphServer

CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
CLIENT_SECRET = "sEcReT~not-a-real-one"


@pytest.fixture
def graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGraphServer]:
    """The fake server with one app registration (client secret, the three application permissions)."""
    server = FakeGraphServer(tmp_path).start()
    monkeypatch.setenv("SSL_CERT_FILE", str(server.cert_path))  # trust the loopback certificate, as a CA bundle
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    server.register_app(CLIENT_ID, secret=CLIENT_SECRET)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def alice(graph: FakeGraphServer) -> FakeMailbox:
    return graph.mailbox(REP, "Alice")


@pytest.fixture
def connect(graph: FakeGraphServer) -> Iterator[Callable[..., GraphConnector]]:
    """``connect(upn=REP, secret=CLIENT_SECRET, **url_options)`` → a GraphConnector, closed after the test."""
    made: list[GraphConnector] = []

    def make(upn: str = REP, secret: str = CLIENT_SECRET, client_id: str = CLIENT_ID, **options: str) -> GraphConnector:
        connector = GraphConnector(graph.source_url(upn, client_id, **options), secret)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


def drain(connector: GraphConnector, folder: str, cursor: str | None = None,
          limit: int = 500) -> tuple[list[ChangePage], list[RawItem]]:  # fmt: skip
    """List and fetch a folder to the end of the round, as the pipeline does."""
    pages: list[ChangePage] = []
    items: list[RawItem] = []
    while True:
        page = connector.list_changes(folder, cursor, limit)
        pages.append(page)
        items.extend(connector.fetch(folder, page.upserts))
        cursor = page.next_cursor
        if not page.more:
            return pages, items


@pytest.fixture
def keyed_app(database_url: str, tmp_path: Path) -> Iterator[App]:
    """A migrated, seeded database whose settings hold a CRM_SECRET_KEY (mailbox secrets get encrypted)."""
    from crm_store.db import transaction
    from crm_store.migrate import upgrade
    from crm_store.seed import seed_defaults

    application = bootstrap(make_settings(database_url, tmp_path / "data", secret_keys=(generate_key(),)))
    upgrade(application.engine)
    with transaction(application.sessions) as session:
        seed_defaults(session)
        seed_crm(session)
    yield application
    application.close()


@pytest.fixture
def graph_mailbox(keyed_app: App, graph: FakeGraphServer) -> Callable[..., int]:
    """``graph_mailbox(name="alice", upn=REP, secret=CLIENT_SECRET, **url_options)`` → the new mailbox's id."""

    def add(name: str = "alice", upn: str = REP, secret: str = CLIENT_SECRET, client_id: str = CLIENT_ID,
            **options: str) -> int:  # fmt: skip
        from crm_store.db import transaction
        from sync_service.mailboxes import add_mailbox

        with transaction(keyed_app.sessions) as session:
            url = graph.source_url(upn, client_id, **options)
            return add_mailbox(session, name, upn, url, secret, keyed_app.settings.secret_keys).id

    return add

"""Fixtures shared by the whole suite: databases (SQLite and a real PostgreSQL), an app, the CLI."""

from __future__ import annotations

import gc
import itertools
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from sync_service.bootstrap import App, bootstrap
from sync_service.config import Settings
from tests.support.servers import PostgresServer, RedisServer

REPO = Path(__file__).resolve().parents[1]
_counter = itertools.count()


def shared_corpus() -> Path | None:
    path = Path(os.environ.get("CRM_SHARED_CORPUS") or REPO.parent / "shared" / "corpus")
    return path if path.is_dir() else None


@pytest.fixture(autouse=True)
def _unfreeze_the_garbage_collector() -> Iterator[None]:
    """`crm-sync sync` and `demo` (and the worker processes) freeze what is alive for the garbage collector
    (sync_service/startup.py): right for a command that runs once per process, not for a test session."""
    yield
    gc.unfreeze()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    server = PostgresServer()
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


# Suites whose subject is the database (SQL semantics, transactions, several processes) run on both
# backends; the others (parsers, matching, connectors against their servers) test the source, not the
# database, and run on SQLite only, which keeps CI well inside its time budget.
BOTH_BACKENDS = {"store", "pipeline", "cli", "process", "rematch", "workers", "importers", "dashboard"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        suite = Path(str(item.fspath)).relative_to(REPO / "tests").parts[0]
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("database_url") if callspec else None
        (drop if backend == "postgresql" and suite not in BOTH_BACKENDS else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    # Tests that fork need a process with no other thread: they run first, before other suites leave idle
    # threads behind (HTTP clients' connection watchers, test servers' request threads).
    items[:] = [i for i in keep if i.get_closest_marker("lone_thread")] + [
        i for i in keep if not i.get_closest_marker("lone_thread")
    ]


def _backends() -> list[str]:
    chosen = os.environ.get("CRM_TEST_BACKENDS", "sqlite,postgresql")
    return [b.strip() for b in chosen.split(",") if b.strip()]


@pytest.fixture(params=_backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database per test: a SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crm.db'}"
    server_url: str = request.getfixturevalue("postgres_server")
    name = f"t{os.getpid()}_{next(_counter)}"
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def make_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "internal_domains": frozenset({"northwind-sales.example"}),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    """A migrated, seeded database with a blob store in tmp_path."""
    from crm_store.db import transaction
    from crm_store.migrate import upgrade
    from crm_store.seed import seed_defaults

    application = bootstrap(make_settings(database_url, tmp_path / "data"))
    upgrade(application.engine)
    with transaction(application.sessions) as session:
        seed_defaults(session)
    yield application
    application.close()


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run `crm-sync ARGS…` in-process against this test's database, as the console command does."""
    from sync_service.cli.main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRM_DATABASE_URL", database_url)
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CRM_INTERNAL_DOMAINS", "northwind-sales.example")
    monkeypatch.setenv("COLUMNS", "200")
    for name in ("CRM_BROKER_URL", "CRM_AUTO_CREATE", "CRM_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["crm-sync", *args])
        code = 0
        try:
            main()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run

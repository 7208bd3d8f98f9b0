"""Crash tests: real worker and scheduler processes on Redis and PostgreSQL, killed and restarted mid-sync.

The final database must equal a clean run's, compared by natural keys (``snapshot``): nothing lost, nothing
doubled. Recovery must not wait for dramatiq's redelivery of a dead worker's messages (~100 s): the scheduler
sees the mailbox ``syncing`` with no live lock and re-drives it from the cursors stored in the database.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import func, select

from crm_store.db import transaction
from crm_store.migrate import upgrade
from crm_store.models import FolderState, Mailbox, RawItem
from crm_store.models.sync import IDLE
from crm_store.seed import seed_defaults
from sync_service.bootstrap import App, bootstrap
from sync_service.pipeline.process import count_pending
from sync_service.pipeline.runner import run_once
from tests.conftest import REPO, _backends, make_settings
from tests.support.flaky import SCHEME_ENTRY, flaky_url
from tests.support.servers import RedisServer
from tests.workers.conftest import (
    assert_same,
    generated_mail,
    new_postgres_database,
    prepare,
    snapshot,
    wait_for,
)

# ~1 min each on an idle 2-core machine
pytestmark = [pytest.mark.slow, pytest.mark.reliability, pytest.mark.timeout(600)]
BATCH = 25


@pytest.fixture
def postgres(request: pytest.FixtureRequest) -> str:
    if "postgresql" not in _backends():
        pytest.skip("needs the PostgreSQL backend (CRM_TEST_BACKENDS): several processes share the database")
    server: str = request.getfixturevalue("postgres_server")
    return server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test alone: it gets restarted."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


def _database(server_url: str, data_dir: Path) -> App:
    app = bootstrap(make_settings(new_postgres_database(server_url), data_dir, batch_size=BATCH))
    upgrade(app.engine)
    with transaction(app.sessions) as session:
        seed_defaults(session)
    return app


class Process:
    """``crm-sync ARGS`` in its own process group, so that SIGKILL takes dramatiq's children too."""

    def __init__(self, args: list[str], env: dict[str, str], log: IO[bytes]) -> None:
        command = [sys.executable, "-m", "sync_service.cli.main", *args]
        self.popen = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=log, start_new_session=True)

    def kill(self) -> None:
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def _env(app: App, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env.update(
        CRM_DATABASE_URL=app.settings.database_url,
        CRM_DATA_DIR=str(app.settings.data_dir),
        CRM_BROKER_URL=redis_url,
        CRM_INTERNAL_DOMAINS="northwind-sales.example",
        CRM_BATCH_SIZE=str(BATCH),
        CRM_LOCK_TTL="2",  # a dead worker's lock expires after 2 s
        CRM_RETRY_MIN_BACKOFF_MS="200",
        CRM_RETRY_MAX_BACKOFF_MS="2000",
        CRM_EXTRA_CONNECTORS=SCHEME_ENTRY,
        PYTHONPATH=str(REPO),
    )
    return env


def _progress(app: App) -> tuple[int, int]:
    """(raw items stored, raw items still to process)."""
    with app.sessions() as session:
        stored = int(session.scalar(select(func.count()).select_from(RawItem)) or 0)
        return stored, count_pending(session)


def _moved(app: App, before: tuple[int, int], stage: str, expected: int) -> bool:
    """Whether ``stage`` (fetching: items stored; processing: items processed) progressed since ``before``."""
    stored, pending = _progress(app)
    if stage == "fetching":
        return stored > before[0] or stored == expected
    return stored - pending > before[0] - before[1] or _finished(app, expected)


def _finished(app: App, expected: int) -> bool:
    with app.sessions() as session:
        boxes = session.execute(select(Mailbox.state, Mailbox.last_success_at)).all()
        stages = set(session.scalars(select(FolderState.stage)))
        stored = int(session.scalar(select(func.count()).select_from(RawItem)) or 0)
        return (
            all(state == IDLE and last is not None for state, last in boxes)
            and stages == {"incremental"}
            and stored == expected
            and count_pending(session) == 0
        )


def _clean_run(server_url: str, tmp_path: Path, sources: dict[str, str]) -> dict[str, object]:
    app = _database(server_url, tmp_path / "clean-data")
    try:
        prepare(app, sources)
        report = run_once(app)
        assert not report.failed, report.failed
        return snapshot(app)
    finally:
        app.close()


def test_workers_killed_at_random_points_lose_nothing_and_double_nothing(
    postgres: str, redis_url: str, tmp_path: Path
) -> None:
    sources = {
        "alice": f"maildir://{generated_mail(tmp_path / 'alice', 1200)}",
        "bob": f"maildir://{generated_mail(tmp_path / 'bob', 800, shared_from=800)}",  # 400 shared with alice
    }
    expected = 2000
    app = _database(postgres, tmp_path / "data")
    prepare(app, sources)
    env = _env(app, redis_url)
    seed = random.randrange(1_000_000)
    chance = random.Random(seed)
    kills: list[tuple[int, int]] = []
    with open(tmp_path / "processes.log", "wb") as log:
        scheduler = Process(["scheduler", "--interval", "3", "--tick", "0.3", "--complete-every", "5"], env, log)
        try:
            for stage in ("fetching", "processing", "fetching", "processing"):
                before = _progress(app)
                worker = Process(["worker", "--processes", "1", "--threads", "3"], env, log)
                wait_for(lambda b=before, s=stage: _moved(app, b, s, expected), 120, f"{stage} to make progress")  # type: ignore[misc]
                # A random point of that stage: mid-page, mid-batch, between batches, wherever the clock lands.
                time.sleep(chance.uniform(0.0, 1.0))
                worker.kill()
                kills.append(_progress(app))
            worker = Process(["worker", "--processes", "1", "--threads", "3"], env, log)
            wait_for(lambda: _finished(app, expected), 300, f"the sync to finish after kills at {kills} (seed {seed})")
            worker.stop()
        finally:
            scheduler.stop()
    print(f"\nkilled at (stored, pending) = {kills}; random seed {seed}")
    assert any(stored < expected for stored, _ in kills), "no kill hit the sync stage"
    assert any(0 < pending < stored for stored, pending in kills), "no kill hit the processing stage"
    crashed = snapshot(app)
    app.close()
    clean = _clean_run(postgres, tmp_path, sources)
    assert len(clean["activities"]) > 1000  # type: ignore[arg-type]
    assert_same(crashed, clean)


def test_a_redis_restart_in_the_middle_of_a_sync_loses_no_work(
    postgres: str, own_redis: RedisServer, flaky: None, tmp_path: Path
) -> None:
    sources = {
        "alice": flaky_url(generated_mail(tmp_path / "alice", 600), delay=0.1),  # a slow server: ~2.4 s of pages
        "bob": f"maildir://{generated_mail(tmp_path / 'bob', 200, shared_from=500)}",
    }
    app = _database(postgres, tmp_path / "data")
    prepare(app, sources)
    env = _env(app, own_redis.url)
    with open(tmp_path / "processes.log", "wb") as log:
        scheduler = Process(["scheduler", "--interval", "3", "--tick", "0.3", "--complete-every", "5"], env, log)
        worker = Process(["worker", "--processes", "1", "--threads", "3"], env, log)
        try:
            wait_for(lambda: _progress(app)[0] >= 100, 90, "the first pages")
            own_redis.restart()  # every queued message, lock and marker is gone
            at_restart = _progress(app)
            wait_for(lambda: _finished(app, 800), 300, "the sync to finish after the Redis restart")
        finally:
            worker.stop()
            scheduler.stop()
    assert at_restart[0] < 800 or at_restart[1] > 0, "the restart did not hit work in progress"
    restarted = snapshot(app)
    app.close()
    assert_same(restarted, _clean_run(postgres, tmp_path, sources))

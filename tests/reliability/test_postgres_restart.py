"""A PostgreSQL restart in the middle of a multi-batch sync (Redis mode): real worker and scheduler processes.

The database server goes down (``pg_ctl stop -m fast``: every session is terminated) and stays down for a
moment twice — while pages are being fetched and stored, then while items are being processed — and comes back
on the same port with the same data. The workers' transactions in flight roll back, their tasks fail and are
retried (``workers/retry.py``), the scheduler re-drives what is left from the database; the final database must
equal a clean run's by natural keys (``tests.workers.conftest.snapshot``). The process helpers are those of
``tests/workers/test_crash.py`` (SIGKILL of workers, Redis restart).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _backends
from tests.support.flaky import SCHEME_ENTRY, flaky_url
from tests.support.servers import PostgresServer
from tests.workers.conftest import assert_same, generated_mail, prepare, snapshot, wait_for
from tests.workers.test_crash import Process, _clean_run, _database, _env, _finished, _progress

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(400)]


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test alone: it gets restarted."""
    if "postgresql" not in _backends():
        pytest.skip("needs the PostgreSQL backend (CRM_TEST_BACKENDS): several processes share the database")
    server = PostgresServer()
    server.start()
    yield server
    server.close()


def test_a_postgres_restart_in_the_middle_of_a_sync_loses_nothing_and_doubles_nothing(
    own_postgres: PostgresServer, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_EXTRA_CONNECTORS", SCHEME_ENTRY)  # flaky:// for the clean run in this process
    sources = {
        "alice": flaky_url(generated_mail(tmp_path / "alice", 600), delay=0.05),  # a slowish server: 24 pages
        "bob": f"maildir://{generated_mail(tmp_path / 'bob', 300, shared_from=400)}",  # 200 shared with alice
    }
    expected = 900
    app = _database(own_postgres.url, tmp_path / "data")
    prepare(app, sources)
    env = _env(app, redis_url)
    at_restart: list[tuple[int, int]] = []
    with open(tmp_path / "processes.log", "wb") as log:
        scheduler = Process(["scheduler", "--interval", "3", "--tick", "0.3", "--complete-every", "5"], env, log)
        worker = Process(["worker", "--processes", "1", "--threads", "3"], env, log)
        try:
            wait_for(lambda: _progress(app)[0] >= 100, 90, "the first pages")
            at_restart.append(_progress(app))
            own_postgres.restart(downtime=1.5)
            wait_for(lambda: (lambda p: p[0] - p[1])(_progress(app)) >= 300, 120, "processing to get under way")
            at_restart.append(_progress(app))
            own_postgres.restart(downtime=1.5)
            wait_for(lambda: _finished(app, expected), 240, f"the sync to finish after restarts at {at_restart}")
        finally:
            worker.stop()
            scheduler.stop()
    print(f"\nPostgreSQL restarted at (stored, pending) = {at_restart}")
    # The restarts met work in flight: tasks failed on the database and dramatiq retried them.
    assert "Retrying message" in (tmp_path / "processes.log").read_text()
    (stored_1, _), (stored_2, pending_2) = at_restart
    assert stored_1 < expected, "the first restart did not hit the fetching"
    assert stored_2 < expected or pending_2 > 0, "the second restart did not hit work in progress"
    restarted = snapshot(app)
    app.close()
    clean = _clean_run(own_postgres.url, tmp_path, sources)
    assert len(clean["activities"]) > expected // 2  # type: ignore[arg-type]
    assert_same(restarted, clean)

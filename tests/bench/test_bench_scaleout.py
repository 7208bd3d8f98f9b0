"""Smoke test of the scale-out benchmark (bench/bench_scaleout.py): real worker and scheduler processes on a
throw-away Redis and PostgreSQL, a tiny corpus in two mailboxes, one run with one worker process and one with
two. Nothing here asserts a timing — only that both runs finish and produce the same database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import bench_scaleout
from tests.support.servers import PostgresServer, RedisServer, missing

pytestmark = pytest.mark.timeout(300)


def test_the_scaleout_benchmark_runs_both_configurations_and_they_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for server in (RedisServer(), PostgresServer()):
        reason = server.unavailable()
        server.close()
        if reason is not None:
            missing(reason)  # skipped here, a failure under CI=true
    out = tmp_path / "result.json"
    code = bench_scaleout.main(
        [
            *("--messages", "200", "--mailboxes", "2", "--accounts", "30", "--leads", "10"),
            *("--cache", str(tmp_path / "cache"), "--workdir", str(tmp_path), "--json", str(out)),
        ]
    )
    printed = capsys.readouterr().out
    assert "skipped:" not in printed, printed  # both servers are here: the benchmark must have run
    assert code == 0, printed
    for row in (
        "run A1: 1 worker process × 1 thread",
        "run B1: 2 worker processes × 1 thread",
        "median, 2 worker processes (1 run)",
        "every run produced the same database as run A1",
    ):
        assert row in printed, f"missing {row!r} in:\n{printed}"
    results = json.loads(out.read_text())
    first, second = results["runs"]
    assert (first["processes"], second["processes"]) == (1, 2)
    assert first["messages"] == second["messages"] == 200
    assert second["agrees"] is True and second["differences"] == []
    assert first["counts"] == second["counts"] and first["counts"]["activities"] > 100
    assert first["seconds"] > 0 and results["ratio"] > 0
    assert not list(tmp_path.glob("crm-sync-scaleout-*")), "the work folder is removed"

"""dramatiq's own metrics in ``/metrics``: worker processes with ``CRM_WORKER_METRICS_DIR`` run dramatiq's
Prometheus middleware, which writes prometheus_client multiprocess files; the dashboard merges them.

The worker runs in a child process, as dramatiq's worker processes do: prometheus_client chooses its storage
(files or memory) when first imported, so the test process itself must not be the one counting."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sync_service.config import load_settings
from sync_service.dashboard.app import create_app
from tests.dashboard.conftest import METRICS_TOKEN, Seeded, make_config
from workers.broker import prepare_worker_metrics, worker_metrics_middleware

REPO = Path(__file__).resolve().parents[2]

# A dramatiq worker on a StubBroker with the middleware crm-sync's worker processes get: three messages, one
# of which fails and (no retries) is dead-lettered.
WORKER = textwrap.dedent(
    """
    import dramatiq
    from dramatiq.brokers.stub import StubBroker
    from dramatiq.middleware import Retries

    from sync_service.config import load_settings
    from workers.broker import worker_metrics_middleware

    metrics = worker_metrics_middleware(load_settings())
    print("forks", len(metrics.forks))
    broker = StubBroker(middleware=[Retries(max_retries=0)], fail_fast_default=False)
    broker.add_middleware(metrics)
    broker.emit_after("process_boot")  # what dramatiq's worker process does after loading the broker

    @dramatiq.actor(broker=broker, actor_name="ping", queue_name="maintenance")
    def ping(fail: bool) -> None:
        if fail:
            raise RuntimeError("boom")

    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    for fail in (False, False, True):
        ping.send(fail)
    broker.join("maintenance")
    worker.join()
    worker.stop()
    print("dead", len(broker.dead_letters))
    """
)


def _run_worker(directory: Path, port: str = "0") -> str:
    env = {**os.environ, "CRM_WORKER_METRICS_DIR": str(directory), "CRM_WORKER_METRICS_PORT": port}
    for name in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir", "dramatiq_prom_db"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", WORKER], env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _scrape(seeded: Seeded) -> str:
    with TestClient(create_app(seeded.app, make_config()), base_url="http://testserver") as client:
        answer = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert answer.status_code == 200
    return answer.text


def test_metrics_include_dramatiqs_worker_metrics(seeded: Seeded, tmp_path: Path) -> None:
    directory = tmp_path / "worker-metrics"
    out = _run_worker(directory)
    assert "forks 0" in out and "dead 1" in out  # port 0: no exposition server of the worker's own
    assert any(directory.glob("counter_*.db"))
    seeded.app.settings = replace(seeded.app.settings, worker_metrics_dir=directory)
    text = _scrape(seeded)
    labels = '{actor_name="ping",queue_name="maintenance"}'
    assert f"dramatiq_messages_total{labels} 3.0" in text
    assert f"dramatiq_message_errors_total{labels} 1.0" in text
    assert f"dramatiq_message_rejects_total{labels} 1.0" in text  # the dead letter
    assert f"dramatiq_message_duration_milliseconds_count{labels} 3.0" in text
    assert "crm_sync_worker_metrics_up 1" in text
    assert 'crm_sync_mailbox_state{mailbox="broken",state="failed"} 1' in text  # our own gauges are still there
    types = re.findall(r"^# TYPE (\S+) ", text, re.M)
    assert len(types) == len(set(types))  # every family declared once


def test_without_the_setting_there_are_no_worker_metrics(seeded: Seeded, tmp_path: Path) -> None:
    assert seeded.app.settings.worker_metrics_dir is None
    text = _scrape(seeded)
    assert "dramatiq_" not in text and "crm_sync_worker_metrics_up" not in text
    assert worker_metrics_middleware(seeded.app.settings) is None  # and workers run without the middleware


def test_an_unreadable_metrics_directory_is_reported(seeded: Seeded, tmp_path: Path) -> None:
    seeded.app.settings = replace(seeded.app.settings, worker_metrics_dir=tmp_path / "missing")
    text = _scrape(seeded)
    assert "crm_sync_worker_metrics_up 0" in text and "dramatiq_" not in text


def test_the_worker_serves_its_own_endpoint_unless_the_port_is_0(tmp_path: Path) -> None:
    assert "forks 1" in _run_worker(tmp_path / "m", port="9311")  # dramatiq's exposition server, forked by its CLI


def test_worker_start_drops_the_files_of_earlier_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("dramatiq_prom_db", "dramatiq_prom_host", "dramatiq_prom_port", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.setenv(name, "restored-after-the-test")
    directory = tmp_path / "m"
    directory.mkdir()
    for name in ("counter_12.db", "gauge_livesum_12.db", "histogram_12.db", "notes.txt"):
        (directory / name).write_text("x")
    settings = load_settings({"CRM_WORKER_METRICS_DIR": str(directory), "CRM_WORKER_METRICS_PORT": "9400"})
    prepare_worker_metrics(settings)
    assert sorted(p.name for p in directory.iterdir()) == ["notes.txt"]
    names = ("PROMETHEUS_MULTIPROC_DIR", "dramatiq_prom_db", "dramatiq_prom_host", "dramatiq_prom_port")
    exported = [os.environ.get(name) for name in names]  # read by prometheus_client and dramatiq at import
    assert exported == [str(directory), str(directory), "127.0.0.1", "9400"]

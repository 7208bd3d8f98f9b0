"""The one place a dramatiq broker is created and set (``dramatiq.set_broker``).

``setup_broker(settings)`` picks the mode from ``CRM_BROKER_URL``:

- unset → **embedded**: dramatiq's in-process ``StubBroker``, drained by ``dramatiq.Worker`` threads inside the
  command that needs the work done (``sync --once``, ``demo``: see ``workers/embedded.py``); in-process locks.
- ``redis://…`` / ``rediss://…`` → **Redis**: ``RedisBroker``; ``crm-sync worker`` runs the worker processes,
  ``crm-sync scheduler`` enqueues; locks live in Redis and are shared by every process on every machine.

It declares the actors on the new broker explicitly (``workers.actors.declare_actors``), so nothing depends on
which module was imported first, and returns a ``Runtime`` that holds the broker, the actors and the locks.
Nothing here runs at import; dramatiq's own worker processes call ``setup_from_environment`` once each
(``dramatiq workers.broker:setup_from_environment``).

With ``CRM_WORKER_METRICS_DIR`` set, those worker processes also run dramatiq's Prometheus middleware
(``worker_metrics_middleware``): it writes ``prometheus_client`` multiprocess files into that directory, which
the dashboard's ``/metrics`` merges, and serves them on ``CRM_WORKER_METRICS_HOST:CRM_WORKER_METRICS_PORT``.
Only the worker processes get it: the scheduler, the dashboard and the CLI never process messages.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dramatiq
import redis
from dramatiq import Broker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from sync_service.bootstrap import App
from sync_service.config import Settings, load_env_file, load_settings
from sync_service.errors import ConfigError
from sync_service.startup import freeze_startup_objects
from workers.actors import Actors, declare_actors
from workers.context import Hooks, WorkerContext
from workers.locks import LocalLocks, Locks, RedisLocks
from workers.logs import configure_json_logging
from workers.options import WorkerOptions, worker_options
from workers.presence import WorkerPresence
from workers.retry import make_retry_when

log = logging.getLogger("workers.broker")
Mode = Literal["embedded", "redis"]
NAMESPACE = "dramatiq"  # RedisBroker's default key prefix; workers/queues.py reads the same keys


def broker_mode(settings: Settings) -> Mode:
    url = settings.broker_url
    if not url:
        return "embedded"
    if url.startswith(("redis://", "rediss://", "unix://")):
        return "redis"
    raise ConfigError(f"CRM_BROKER_URL must be a redis:// URL (or unset for the embedded queue), got {url!r}")


def redis_client(url: str) -> redis.Redis:
    """A client with timeouts, so a Redis outage shows as an error instead of a hang."""
    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=15)


@dataclass
class Runtime:
    mode: Mode
    broker: Broker
    actors: Actors
    locks: Locks
    context: WorkerContext
    options: WorkerOptions
    redis: redis.Redis | None = None

    def send(self, actor: str, *args: object) -> None:
        self.actors.send(actor, *args)

    def close(self) -> None:
        self.context.close()
        self.broker.close()


def _middleware(options: WorkerOptions, *, redis_mode: bool = False) -> list[Middleware]:
    """``redis_mode``: add ``WorkerPresence`` (a process whose worker boots registers itself in Redis, for
    ``workers.liveness``); the embedded queue's worker threads have nobody to tell."""
    presence: list[Middleware] = [WorkerPresence()] if redis_mode else []
    return [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        CurrentMessage(),  # tasks.first_try: a retry is not counted as one more failed sync
        Retries(
            max_retries=options.max_retries,
            min_backoff=options.min_backoff_ms,
            max_backoff=options.max_backoff_ms,
            retry_when=make_retry_when(options.max_retries),
        ),
        *presence,
    ]


def setup_broker(
    settings: Settings,
    *,
    app: App | None = None,
    hooks: Hooks | None = None,
    embedded: bool | None = None,
) -> Runtime:
    """Create the broker for ``settings``, set it as dramatiq's global broker, declare the actors on it.

    ``embedded=True`` forces the in-process queue (``sync --once`` in Redis mode still syncs in the foreground,
    but takes the shared Redis locks, so it never runs beside a worker on the same mailbox).
    ``app``: the tasks use this app instead of building their own (foreground runs and tests).
    """
    mode = broker_mode(settings)
    client = redis_client(settings.broker_url) if mode == "redis" and settings.broker_url else None
    in_process = embedded if embedded is not None else mode == "embedded"
    options = worker_options(embedded=in_process)
    broker: Broker
    if in_process:
        broker = StubBroker(middleware=_middleware(options), fail_fast_default=False)
    else:
        broker = RedisBroker(client=client, namespace=NAMESPACE, middleware=_middleware(options, redis_mode=True))
    dramatiq.set_broker(broker)
    locks: Locks = RedisLocks(client) if client is not None else LocalLocks()
    context = WorkerContext(settings, locks, options, app=app, hooks=hooks)
    actors = declare_actors(broker, context)
    return Runtime("embedded" if in_process else "redis", broker, actors, locks, context, options, client)


# The files prometheus_client writes in multiprocess mode: ``counter_<pid>.db``, ``gauge_livesum_<pid>.db``, …
_METRIC_FILE = re.compile(r"^(counter|histogram|summary|gauge_[a-z]+)_\d+\.db$")


def metrics_environment(settings: Settings) -> dict[str, str]:
    """The variables dramatiq's Prometheus middleware and ``prometheus_client`` read at import time (so they must
    be in the environment before either is imported); empty when ``CRM_WORKER_METRICS_DIR`` is unset."""
    if settings.worker_metrics_dir is None:
        return {}
    directory = str(settings.worker_metrics_dir)
    return {
        "dramatiq_prom_db": directory,
        "dramatiq_prom_host": settings.worker_metrics_host,
        "dramatiq_prom_port": str(settings.worker_metrics_port),
        "PROMETHEUS_MULTIPROC_DIR": directory,
    }


def prepare_worker_metrics(settings: Settings) -> None:
    """Before ``crm-sync worker`` starts its processes: create the directory, drop the files of earlier runs
    (their counters would be summed in forever, their live gauges never drop), export the variables."""
    directory = settings.worker_metrics_dir
    if directory is None:
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path in directory.iterdir():
            if _METRIC_FILE.match(path.name):
                path.unlink(missing_ok=True)
    except OSError as error:
        raise ConfigError(f"CRM_WORKER_METRICS_DIR {directory}: {error.strerror or error}") from None
    os.environ.update(metrics_environment(settings))


def worker_metrics_middleware(settings: Settings) -> Middleware | None:
    """dramatiq's ``Prometheus`` middleware writing into ``CRM_WORKER_METRICS_DIR`` (None when unset); it starts no
    HTTP endpoint of its own when ``CRM_WORKER_METRICS_PORT`` is 0."""
    if settings.worker_metrics_dir is None:
        return None
    settings.worker_metrics_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(metrics_environment(settings))
    from dramatiq.middleware import prometheus  # reads dramatiq_prom_* at its first import

    if Path(prometheus.DB_PATH) != settings.worker_metrics_dir:
        raise ConfigError(
            f"dramatiq's Prometheus middleware was imported with another directory ({prometheus.DB_PATH}) "
            "before CRM_WORKER_METRICS_DIR was applied"
        )
    values = sys.modules.get("prometheus_client.values")
    if values is not None and not getattr(values.ValueClass, "_multiprocess", False):
        raise ConfigError("prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set")

    class WithoutServer(prometheus.Prometheus):
        @property
        def forks(self) -> list[Callable[[], int]]:
            return []

    return prometheus.Prometheus() if settings.worker_metrics_port else WithoutServer()


_process_runtime: Runtime | None = None


def setup_from_environment() -> None:
    """Entry point for dramatiq's worker processes: JSON logs, settings from the environment, the Redis broker."""
    global _process_runtime
    if _process_runtime is not None:
        return
    load_env_file()
    configure_json_logging()
    settings = load_settings()
    if broker_mode(settings) != "redis":
        raise ConfigError("dramatiq workers need CRM_BROKER_URL=redis://…")
    runtime = setup_broker(settings)
    metrics = worker_metrics_middleware(settings)
    if metrics is not None:
        runtime.broker.add_middleware(metrics)
    _process_runtime = runtime
    # The idle poll dramatiq was imported with (``options.prepare_dramatiq_environment``), for the admin to see.
    log.info("worker process set up", extra={"event": "worker_setup", "idle_poll_ms": dramatiq.worker.WORKER_TIMEOUT})
    freeze_startup_objects()  # this process is set up: its start-up objects live as long as it does

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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import dramatiq
import redis
from dramatiq import Broker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AgeLimit, Callbacks, Middleware, Pipelines, Retries, ShutdownNotifications, TimeLimit

from sync_service.bootstrap import App
from sync_service.config import Settings, load_settings
from sync_service.errors import ConfigError
from workers.actors import Actors, declare_actors
from workers.context import Hooks, WorkerContext
from workers.locks import LocalLocks, Locks, RedisLocks
from workers.logs import configure_json_logging
from workers.options import WorkerOptions, worker_options
from workers.retry import make_retry_when

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


def _middleware(options: WorkerOptions) -> list[Middleware]:
    return [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(
            max_retries=options.max_retries,
            min_backoff=options.min_backoff_ms,
            max_backoff=options.max_backoff_ms,
            retry_when=make_retry_when(options.max_retries),
        ),
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
        broker = RedisBroker(client=client, namespace=NAMESPACE, middleware=_middleware(options))
    dramatiq.set_broker(broker)
    locks: Locks = RedisLocks(client) if client is not None else LocalLocks()
    context = WorkerContext(settings, locks, options, app=app, hooks=hooks)
    actors = declare_actors(broker, context)
    return Runtime("embedded" if in_process else "redis", broker, actors, locks, context, options, client)


_process_runtime: Runtime | None = None


def setup_from_environment() -> None:
    """Entry point for dramatiq's worker processes: JSON logs, settings from the environment, the Redis broker."""
    global _process_runtime
    if _process_runtime is not None:
        return
    from dotenv import load_dotenv

    load_dotenv(override=False)
    configure_json_logging()
    settings = load_settings()
    if broker_mode(settings) != "redis":
        raise ConfigError("dramatiq workers need CRM_BROKER_URL=redis://…")
    _process_runtime = setup_broker(settings)

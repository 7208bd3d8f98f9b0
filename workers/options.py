"""Tuning knobs of the workers, read from the environment when a runtime is built (never at import).

| variable                   | embedded default | Redis default | meaning                                        |
|----------------------------|------------------|---------------|------------------------------------------------|
| ``CRM_LOCK_TTL``           | 60               | 60            | seconds a mailbox lock lives without a refresh |
| ``CRM_MAX_RETRIES``        | 3                | 10            | retries of a transient failure, then dead letter |
| ``CRM_RETRY_MIN_BACKOFF_MS`` | 1000           | 5000          | first backoff; doubles per retry, with jitter  |
| ``CRM_RETRY_MAX_BACKOFF_MS`` | 30000          | 600000        | backoff cap                                    |
| ``CRM_WORKER_THREADS``     | 2                | (``--threads``) | embedded worker threads                      |
| ``CRM_PROCESS_SLICE_SECONDS`` | —             | 1             | a mailbox's processing task hands the rest of |
|                            |                  |               | its pending items to a new task after this long |
| ``CRM_PARSE_PROCESSES``    | 0 (see below)    | 0             | helper processes that parse a mailbox's next  |
|                            |                  |               | batch while its current one is written        |
| ``CRM_FETCH_PROCESS``      | 0 (see below)    | —             | 1: a mailbox's first sync fetches in a process |
|                            |                  |               | of its own while this one processes its pages |
| ``CRM_WORKER_IDLE_POLL_MS`` | —               | 100           | longest wait of an idle worker process between |
|                            |                  |               | two polls of a queue (dramatiq's default: 1000) |

The time slice keeps a large mailbox's processing from holding one worker for its whole length: the tasks of
its slices go to the back of the queue, so several workers share the processing of several mailboxes evenly.
Embedded mode (``sync --once``) processes everything in one run.

Parsing ahead (``sync_service.pipeline.preparse``) puts a second core to work on one large mailbox; it starts
only when more than one batch is pending. crm-sync's own foreground commands (``sync``, ``demo``) use one
helper on a machine with two or more cores (``parse_processes_for_command``); ``run_once`` called from other
code starts none unless ``CRM_PARSE_PROCESSES`` or its ``parse_processes`` argument asks — a helper is
started with ``spawn``, which imports the caller's main module again. Redis workers leave it off by
default: there, more worker processes are the way to use more cores.

Fetching ahead (``workers.fetch_ahead``) does the same for the fetch of a mailbox's first sync: a forked
process stores the pages while ``run_once`` processes them. The foreground commands turn it on on a machine
with two or more cores (``fetch_process_for_command``); ``CRM_FETCH_PROCESS=0`` turns it off. Redis workers
already overlap the two: at each tick the scheduler queues the processing of what a running sync has
stored so far.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sync_service.errors import ConfigError


@dataclass(frozen=True)
class WorkerOptions:
    lock_ttl: float = 60.0
    max_retries: int = 10
    min_backoff_ms: int = 5_000
    max_backoff_ms: int = 600_000
    threads: int = 2
    process_slice: float | None = 1.0  # seconds; None: a processing run goes on until nothing is pending
    parse_processes: int = 0  # helper processes parsing the next batch ahead (0: none)


_EMBEDDED = WorkerOptions(max_retries=3, min_backoff_ms=1_000, max_backoff_ms=30_000, process_slice=None)
_REDIS = WorkerOptions()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {raw!r}")
    return value


def worker_options(embedded: bool, env: Mapping[str, str] | None = None) -> WorkerOptions:
    """The options for a runtime in embedded or Redis mode, with ``CRM_*`` overrides from ``env``."""
    env = os.environ if env is None else env
    base = _EMBEDDED if embedded else _REDIS
    return WorkerOptions(
        lock_ttl=max(1.0, _number(env, "CRM_LOCK_TTL", base.lock_ttl)),
        max_retries=int(_number(env, "CRM_MAX_RETRIES", base.max_retries)),
        min_backoff_ms=max(1, int(_number(env, "CRM_RETRY_MIN_BACKOFF_MS", base.min_backoff_ms))),
        max_backoff_ms=max(1, int(_number(env, "CRM_RETRY_MAX_BACKOFF_MS", base.max_backoff_ms))),
        threads=max(1, int(_number(env, "CRM_WORKER_THREADS", base.threads))),
        process_slice=_slice(env, base.process_slice),
        parse_processes=int(_number(env, "CRM_PARSE_PROCESSES", 0)),
    )


def parse_processes_for_command(env: Mapping[str, str] | None = None) -> int:
    """The parser processes of crm-sync's own foreground commands: ``CRM_PARSE_PROCESSES`` when set, else one
    on a machine with two or more cores."""
    env = os.environ if env is None else env
    return int(_number(env, "CRM_PARSE_PROCESSES", 1 if _cores() > 1 else 0))


def idle_poll_ms(env: Mapping[str, str] | None = None) -> int:
    """``CRM_WORKER_IDLE_POLL_MS``: how long an idle Redis worker process waits, at most, between two polls of a
    queue. dramatiq backs off up to this long after each empty poll; its own default, 1000 ms, left a worker
    idle for up to a second after the scheduler had queued work for it (docs/performance.md, scale-out round
    10, step 48: two worker processes keep 1.55–1.72 cores busy instead of 1.39–1.56)."""
    env = os.environ if env is None else env
    value = int(_number(env, "CRM_WORKER_IDLE_POLL_MS", 100))
    if value < 10:
        raise ConfigError(f"CRM_WORKER_IDLE_POLL_MS must be at least 10, got {env.get('CRM_WORKER_IDLE_POLL_MS')!r}")
    return value


def prepare_dramatiq_environment(env: dict[str, str] | os._Environ[str] | None = None) -> None:
    """Before dramatiq is first imported (it reads these then, and its worker processes are forked from the
    importing process): the idle poll, unless ``dramatiq_worker_timeout`` is set already."""
    env = os.environ if env is None else env
    env.setdefault("dramatiq_worker_timeout", str(idle_poll_ms(env)))


def fetch_process_for_command(env: Mapping[str, str] | None = None) -> bool:
    """Whether crm-sync's own foreground commands fetch a first sync in a process of its own:
    ``CRM_FETCH_PROCESS`` (0 or 1) when set, else on a machine with two or more cores."""
    env = os.environ if env is None else env
    value = _number(env, "CRM_FETCH_PROCESS", 1 if _cores() > 1 else 0)
    if value not in (0, 1):
        raise ConfigError(f"CRM_FETCH_PROCESS must be 0 or 1, got {env.get('CRM_FETCH_PROCESS', '')!r}")
    return bool(value)


def _slice(env: Mapping[str, str], default: float | None) -> float | None:
    if default is None or not env.get("CRM_PROCESS_SLICE_SECONDS", "").strip():
        return default
    return _number(env, "CRM_PROCESS_SLICE_SECONDS", default)

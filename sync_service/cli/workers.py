"""`crm-sync worker`, `crm-sync scheduler`, `crm-sync queue …`: the long-running parts (Redis mode).

In the embedded mode (no ``CRM_BROKER_URL``) there is nothing to run in the background — ``crm-sync sync`` does
the work in the foreground — so these commands exit 1 with a one-line reason. dramatiq and redis are imported
by the commands that use them: every other `crm-sync` command starts without them.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

import typer

from sync_service.cli.common import console, open_app, settings
from sync_service.config import Settings
from sync_service.errors import ConfigError, CrmSyncError
from sync_service.mailboxes import redact_url
from workers import QUEUES

if TYPE_CHECKING:
    from workers.broker import Runtime

queue_app = typer.Typer(help="Inspect and repair the Redis work queues.", no_args_is_help=True)


def _redis_settings(command: str) -> Settings:
    import redis

    from workers.broker import broker_mode, redis_client

    current = settings()
    if broker_mode(current) != "redis":
        raise ConfigError(
            f"crm-sync {command} needs CRM_BROKER_URL=redis://… (without it, crm-sync sync does the work itself)"
        )
    assert current.broker_url is not None
    client = redis_client(current.broker_url)
    try:
        client.ping()
    except redis.RedisError as error:
        raise CrmSyncError(f"cannot reach Redis at {redact_url(current.broker_url)}: {error}") from None
    finally:
        client.close()
    with open_app(app_settings=current):
        pass  # fail now, with one line, if the database is not initialised
    return current


def worker_command(
    processes: int = typer.Option(2, "--processes", min=1, help="Worker processes on this machine."),
    threads: int = typer.Option(4, "--threads", min=1, help="Worker threads per process."),
    queue: list[str] | None = typer.Option(None, "--queue", help=f"Only these queues ({', '.join(QUEUES)})."),
) -> None:
    """Run dramatiq worker processes for the sync, process and maintenance queues (JSON logs on stderr)."""
    from workers.options import prepare_dramatiq_environment

    prepare_dramatiq_environment()  # first: dramatiq reads it when it is imported (below, and by the settings)
    import dramatiq.cli

    from workers.broker import prepare_worker_metrics

    _known_queues(queue)  # a usage error first, before Redis and the database are looked at
    current = _redis_settings("worker")
    argv = ["workers.broker:setup_from_environment", "--processes", str(processes), "--threads", str(threads)]
    argv += ["--skip-logging", *(["--queues", *queue] if queue else [])]
    prepare_worker_metrics(current)  # CRM_WORKER_METRICS_DIR: before dramatiq starts the processes
    raise typer.Exit(dramatiq.cli.main(dramatiq.cli.make_argument_parser().parse_args(argv)))


def scheduler_command(
    interval: float = typer.Option(300.0, "--interval", min=1, help="Seconds between two syncs of a mailbox."),
    tick: float = typer.Option(5.0, "--tick", min=0.1, help="Seconds between two looks at the database."),
    complete_every: float = typer.Option(60.0, "--complete-every", min=1, help="Seconds between due-activity runs."),
) -> None:
    """Enqueue each mailbox at its interval, relaunch stuck ones, keep processing and completion going."""

    from workers.scheduler import Scheduler

    def work(runtime: Runtime, stop: threading.Event) -> None:
        Scheduler(runtime, interval=interval, complete_every=complete_every).run(tick, stop)

    run_until_stopped("scheduler", work)


def _known_queues(queue: list[str] | None) -> tuple[str, ...]:
    """The queues named by ``--queue`` (all when none); a name that is not one is a usage error (exit 2)."""
    unknown = sorted(set(queue or ()) - set(QUEUES))
    if unknown:
        known = ", ".join(QUEUES)
        raise typer.BadParameter(f"unknown queue {', '.join(unknown)} (queues: {known})", param_hint="--queue")
    return tuple(queue) if queue else QUEUES


def run_until_stopped(command: str, work: Callable[[Runtime, threading.Event], None]) -> None:
    """A long-running part in Redis mode (scheduler, watcher): JSON logs, ``work`` until SIGTERM or SIGINT."""
    from workers.broker import setup_broker
    from workers.logs import configure_json_logging

    current = _redis_settings(command)
    configure_json_logging()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runtime = setup_broker(current)
    try:
        work(runtime, stop)
    finally:
        runtime.close()


def _mailbox_id(current: Settings, name: str) -> int:
    from sqlalchemy import select

    from crm_store.models import Mailbox

    with open_app(app_settings=current) as app, app.sessions() as session:
        found = session.scalar(select(Mailbox.id).where(Mailbox.name == name))
    if found is None:
        raise ConfigError(f"no mailbox named {name!r}")
    return found


@queue_app.command("requeue-dead")
def requeue_dead_command(
    queue: list[str] | None = typer.Option(None, "--queue", help=f"Only these queues ({', '.join(QUEUES)})."),
    mailbox: str | None = typer.Option(
        None, "--mailbox", metavar="NAME", help="Only the messages about this mailbox (its syncs, its processing)."
    ),
) -> None:
    """Put dead-lettered messages back on their queues, with a fresh retry budget."""
    from workers.broker import setup_broker
    from workers.queues import requeue_dead

    queues = _known_queues(queue)
    current = _redis_settings("queue requeue-dead")
    mailbox_id = _mailbox_id(current, mailbox) if mailbox is not None else None
    runtime = setup_broker(current)
    try:
        count = requeue_dead(runtime, queues, mailbox_id)
    finally:
        runtime.close()
    about = f" of mailbox {mailbox}" if mailbox is not None else ""
    console.print(f"requeued {count} dead-lettered message{'s' if count != 1 else ''}{about}")


def drop_dead_letters(current: Settings, mailbox_id: int) -> int | None:
    """In Redis mode, drop the dead letters of a removed mailbox; None when not in Redis mode or unreachable."""
    import redis

    from workers.broker import broker_mode, redis_client
    from workers.queues import drop_dead_of_mailbox

    if broker_mode(current) != "redis" or not current.broker_url:
        return None
    client = redis_client(current.broker_url)
    try:
        return drop_dead_of_mailbox(client, mailbox_id)
    except redis.RedisError:
        return None
    finally:
        client.close()


def request_sync(current: Settings, mailbox_id: int) -> bool:
    """In Redis mode, enqueue a sync of the mailbox now (after resume / resync); False if not possible."""
    import redis

    from workers.broker import broker_mode, setup_broker

    if broker_mode(current) != "redis":
        return False
    try:
        runtime = setup_broker(current)
        try:
            runtime.send("sync_mailbox", mailbox_id)
        finally:
            runtime.close()
    except redis.RedisError:
        return False
    return True

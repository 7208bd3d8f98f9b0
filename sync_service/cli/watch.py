"""`crm-sync watch`: the IMAP IDLE watcher (Redis mode), a long-running part beside the scheduler.

It is its own command rather than a thread of ``crm-sync scheduler``: it holds one IMAP connection per watched
folder, so it is sized, restarted and (if ever needed) split across machines independently of the scheduler.
Without ``CRM_BROKER_URL`` it exits 1 with a one-line reason, like ``worker`` and ``scheduler``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import typer

from sync_service.cli.workers import run_until_stopped

if TYPE_CHECKING:
    from workers.broker import Runtime


def watch_command(
    refresh: float = typer.Option(
        30.0, "--refresh", min=1, help="Seconds between two looks at the mailbox list (added, paused, removed)."
    ),
    reidle: float = typer.Option(
        1500.0, "--reidle", min=10, max=1740, help="Seconds before an IDLE is re-issued (RFC 2177: under 29 min)."
    ),
) -> None:
    """Keep an IMAP IDLE connection per folder of each mailbox with idle=1; queue a sync when mail arrives."""
    from workers.idle_watch import WatchTiming
    from workers.watch import Watcher

    def work(runtime: Runtime, stop: threading.Event) -> None:
        Watcher(runtime, refresh_every=refresh, timing=WatchTiming(reidle=reidle)).run(stop)

    run_until_stopped("watch", work)

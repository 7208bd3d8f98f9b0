"""`crm-sync sync [--once] [--mailbox NAME]` in the foreground, with progress bars."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import typer

from sync_service.bootstrap import App
from sync_service.cli.common import console, open_app, progress_bars
from sync_service.errors import CrmSyncError
from sync_service.startup import freeze_startup_objects

if TYPE_CHECKING:
    from sync_service.pipeline.runner import MailboxResult, SyncReport


def run_with_progress(app: App, names: list[str] | None) -> SyncReport:
    """``run_once`` with progress bars, in a process that does nothing else afterwards (``sync``, ``demo``)."""
    from sync_service.pipeline.runner import run_once  # the pipeline: loaded by the commands that sync
    from workers.options import fetch_process_for_command, parse_processes_for_command

    freeze_startup_objects()
    with progress_bars() as progress:
        fetch = progress.add_task("fetching", total=None)
        work = progress.add_task("processing", total=None, visible=False)

        def on_page(count: int) -> None:
            progress.update(fetch, advance=count, refresh=True)

        def on_progress(done: int, total: int) -> None:
            progress.update(work, completed=done, total=total, visible=True, refresh=True)

        processes = parse_processes_for_command()  # this command's entry point is a guarded main module
        return run_once(
            app,
            names,
            on_page=on_page,
            on_progress=on_progress,
            parse_processes=processes,
            fetch_process=fetch_process_for_command(),
        )


def print_report(report: SyncReport) -> None:
    for m in report.mailboxes:
        line = f"{m.name}: {m.state}, {m.stored} new or changed items"
        if m.deleted:
            line += f", {m.deleted} deleted at the source"
        if m.error:
            line += f" — error: {m.error}"
        console.print(line, markup=False)  # an error text may hold brackets: printed as it is
    s = report.stats
    # Over-size items are quarantined as they are fetched; the rest as they are processed.
    quarantined = s.quarantined + sum(m.quarantined for m in report.mailboxes)
    updated = f"updated {s.updated}" + (f" ({s.cancelled} cancelled)" if s.cancelled else "")
    console.print(
        f"logged {s.logged} activities, {updated}, {s.duplicates} already known, "
        f"{quarantined} quarantined, {s.contacts_created} contacts and {s.leads_created} leads created, "
        f"{report.completed} meetings/calls completed"
    )
    if s.skipped:
        console.print("skipped: " + ", ".join(f"{reason} {n}" for reason, n in sorted(s.skipped.items())), markup=False)


def failure_line(result: MailboxResult) -> str:
    """How ``sync --once`` names a mailbox that did not sync: a temporary failure (the mailbox stays ``idle`` or
    ``degraded`` and is tried again) is not worded as the ``failed`` state."""
    if result.transient:
        return f"mailbox {result.name} did not sync this time (tried again at the next run): {result.error}"
    return f"mailbox {result.name} failed: {result.error}"


def sync_command(
    once: bool = typer.Option(False, "--once", help="Sync to the end, finish all resulting work, exit."),
    mailbox: list[str] | None = typer.Option(None, "--mailbox", help="Only this mailbox (repeatable)."),
    interval: int = typer.Option(300, "--interval", min=10, help="Seconds between runs without --once."),
) -> None:
    """Sync mailboxes in the foreground (embedded mode). Without --once, repeat every --interval seconds."""
    with open_app() as app:
        while True:
            report = run_with_progress(app, mailbox or None)
            print_report(report)
            if once:
                if report.failed:
                    raise CrmSyncError("; ".join(failure_line(m) for m in report.failed))
                return
            try:
                time.sleep(interval)
            except KeyboardInterrupt:
                raise typer.Exit(0) from None

"""`crm-sync quarantine retry ID... | --all | --mailbox NAME | --reason TEXT` — process quarantined items again
(SPEC §6: "can be retried"), one by one or in bulk after an incident."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from sync_service.cli.common import console, open_app, progress_bars

if TYPE_CHECKING:
    from sync_service.dashboard.actions import RetryReport

quarantine_app = typer.Typer(
    help="Quarantined items (list them: crm-sync export quarantine): retry them once the cause is fixed.",
    no_args_is_help=True,
)


def _usage_error(message: str) -> None:
    """A usage error as one line on standard error, exit 2 (SPEC §5)."""
    print(f"crm-sync: usage error: {message} (see crm-sync quarantine retry --help)", file=sys.stderr)
    raise typer.Exit(2)


def _entries(n: int) -> str:
    return f"{n:,} entr{'y' if n == 1 else 'ies'}"


def print_retry_report(report: RetryReport) -> None:
    if not report.matched:
        console.print("No quarantine entry matches; nothing retried.")
    if report.processed and report.queued is None:
        console.print(
            f"Retried {_entries(report.processed)}: {report.cleared:,} left the quarantine, "
            f"{report.still_quarantined:,} still quarantined."
        )
        if report.still:
            console.print("Still quarantined, by reason:")
            for reason, count in sorted(report.still.items(), key=lambda item: (-item[1], item[0])):
                console.print(f"  {count:>7,}  {reason}", markup=False)  # a reason may hold brackets
    elif report.processed:
        then = "queued for processing" if report.queued else "the workers process them on their next round"
        console.print(f"Retried {_entries(report.processed)}: pending again; {then}.")
    if report.refetched:
        console.print(
            f"{_entries(report.refetched)} never stored (over CRM_MAX_MESSAGE_BYTES): their folders are read again "
            "by the next sync, which fetches them if the size limit allows it now."
        )
    if report.skipped:
        console.print(
            f"{_entries(report.skipped)} left alone: a failed process step, retried by itself once its process is "
            "fixed."
        )
    console.print(f"{_entries(report.remaining)} in the quarantine now.")


@quarantine_app.command("retry")
def retry(
    entry_ids: list[int] | None = typer.Argument(
        None, metavar="[ID]...", help="Quarantine entry ids (export quarantine: id); or use the options."
    ),
    every: bool = typer.Option(False, "--all", help="Every quarantine entry."),
    mailbox: list[str] | None = typer.Option(
        None, "--mailbox", metavar="NAME", help="Only the entries of this mailbox (repeatable)."
    ),
    reason: str | None = typer.Option(
        None, "--reason", metavar="TEXT", help="Only the entries whose reason contains TEXT (any case)."
    ),
) -> None:
    """Process the items again now, in one run (queued in Redis mode), and say how many left the quarantine.
    Give entry ids, or select entries with --all, --mailbox and --reason (combined: all must hold). An item that
    was never stored, being over CRM_MAX_MESSAGE_BYTES, is fetched again by the next sync of its mailbox."""
    from sync_service.dashboard.actions import retry_entries  # the pipeline: loaded by this command only
    from workers.options import parse_processes_for_command

    selectors = every or bool(mailbox) or reason is not None
    if entry_ids and selectors:
        _usage_error("give entry ids or --all/--mailbox/--reason, not both")
    if not entry_ids and not selectors:
        _usage_error("give entry ids, or select entries with --all, --mailbox or --reason")
    with open_app() as app, progress_bars() as progress:
        task = progress.add_task("processing", total=None, visible=False)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, visible=True, refresh=True)

        report = retry_entries(
            app,
            entry_ids or (),
            every=every,
            mailboxes=mailbox or (),
            reason=reason,
            on_progress=on_progress,
            parse_processes=parse_processes_for_command(),
        )
    print_retry_report(report)

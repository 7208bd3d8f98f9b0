"""`crm-sync quarantine retry ID...` — process quarantined items again (SPEC §6: "can be retried")."""

from __future__ import annotations

import typer

from sync_service.cli.common import console, open_app

quarantine_app = typer.Typer(
    help="Quarantined items (list them: crm-sync export quarantine): retry them once the cause is fixed.",
    no_args_is_help=True,
)


@quarantine_app.command("retry")
def retry(
    entry_ids: list[int] = typer.Argument(..., metavar="ID...", help="Quarantine entry ids (export quarantine: id)."),
) -> None:
    """Process each item again now (queued in Redis mode). An item that was never stored, being over
    CRM_MAX_MESSAGE_BYTES, is fetched again by the next sync of its mailbox."""
    from sync_service.dashboard.actions import retry_quarantined  # the pipeline: loaded by this command only

    with open_app() as app:
        for entry_id in entry_ids:
            console.print(retry_quarantined(app, entry_id), markup=False)

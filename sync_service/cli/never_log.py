"""`crm-sync never-log add|remove|list` — the addresses and domains whose mail is never logged (SPEC §3.1)."""

from __future__ import annotations

import typer

from crm_store.db import transaction
from sync_service import never_log
from sync_service.cli.common import console, open_app

never_log_app = typer.Typer(
    help="Addresses and domains whose mail and meetings are never logged (a domain covers its subdomains).",
    no_args_is_help=True,
)

ValuesArg = typer.Argument(..., metavar="ADDRESS_OR_DOMAIN...", help="e.g. ceo@acme.example or acme.example")


@never_log_app.command("add")
def add(values: list[str] = ValuesArg) -> None:
    """Never log mail or meetings with these addresses or domains from now on (what was logged stays)."""
    with open_app() as app, transaction(app.sessions) as session:
        added = never_log.add_entries(session, values)
    console.print(f"added {len(added)} never-log entr{'y' if len(added) == 1 else 'ies'}", markup=False)


@never_log_app.command("remove")
def remove(values: list[str] = ValuesArg) -> None:
    """Take entries off the list; items they held back are matched again and logged if they now qualify."""
    from sync_service.pipeline.rematch import rematch  # the pipeline: loaded by the commands that need it

    with open_app() as app:
        with transaction(app.sessions) as session:
            removed = never_log.remove_entries(session, values)
        console.print(f"removed {len(removed)} never-log entr{'y' if len(removed) == 1 else 'ies'}", markup=False)
        console.print(rematch(app).summary(), markup=False)


@never_log_app.command("list")
def list_() -> None:
    """The entries, one per line."""
    with open_app() as app, app.sessions() as session:
        entries = never_log.list_entries(session)
    for value in entries:
        console.print(value, markup=False, highlight=False)
    if not entries:
        console.print("the never-log list is empty: crm-sync never-log add ADDRESS_OR_DOMAIN", markup=False)

"""`crm-sync account rename OLD_NAME NEW_NAME`: the one account change the accounts CSV cannot make."""

from __future__ import annotations

import typer

from crm_store.db import transaction
from sync_service.cli.common import console, open_app

account_app = typer.Typer(help="Change accounts beyond what the accounts CSV can express.", no_args_is_help=True)


@account_app.command("rename")
def rename(
    old_name: str = typer.Argument(..., metavar="OLD_NAME", help="The account's current name (any case)."),
    new_name: str = typer.Argument(..., metavar="NEW_NAME", help="Its new name: no other account may have it."),
) -> None:
    """Rename an account, keeping its domains, contacts, opportunities and logged mail.

    The accounts CSV identifies accounts by Name: a renamed row there would create a second account.

    Rename here first, then import the files with the new name."""
    from sync_service.accounts import rename_account

    with open_app() as app, transaction(app.sessions) as session:
        account = rename_account(session, old_name, new_name)
        account_id, new = account.id, account.name
    console.print(f"account {account_id} renamed: {' '.join(old_name.split())} → {new}", markup=False)

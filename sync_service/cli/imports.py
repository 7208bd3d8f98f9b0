"""`crm-sync import KIND FILE`: atomic imports (a bad file changes nothing), then re-matching.

After an import that changed anything has committed, every item seen earlier is matched again
(``pipeline.rematch``): mail that was private until its sender became a contact is logged now.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from crm_store.db import transaction
from sync_service.cli.common import console, open_app

if TYPE_CHECKING:
    from sync_service.importers.report import ImportReport

import_app = typer.Typer(
    help="Import CRM data from CSV (or vCard for contacts). A bad file is rejected whole.", no_args_is_help=True
)

FileArg = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="The file to import.")


def _run(kind: str, path: Path) -> None:
    # The importers and re-matching (the pipeline) are loaded by an import, not whenever `crm-sync` starts.
    from sync_service.importers import import_accounts, import_contacts, import_leads, import_opportunities
    from sync_service.pipeline.rematch import rematch

    with open_app() as app:
        with transaction(app.sessions) as session:
            report: ImportReport
            if kind == "accounts":
                report = import_accounts(session, path)
            elif kind == "contacts":
                report = import_contacts(session, path, default_region=app.settings.phone_region)
            elif kind == "leads":
                report = import_leads(session, path, default_region=app.settings.phone_region)
            else:
                report = import_opportunities(session, path)
        console.print(report.summary(), markup=False)  # names taken from the file are printed as written
        # The import is committed; items seen earlier may match the new data now (SPEC §3.7).
        if report.created or report.updated:
            console.print(rematch(app).summary())


@import_app.command("accounts")
def accounts(file: Path = FileArg) -> None:
    """Accounts CSV: Name,Type,Domains,Territory,Owner (Domains separated by ';')."""
    _run("accounts", file)


@import_app.command("contacts")
def contacts(file: Path = FileArg) -> None:
    """Outlook contacts CSV export, or a vCard 3/4 file (.vcf)."""
    _run("contacts", file)


@import_app.command("leads")
def leads(file: Path = FileArg) -> None:
    """Leads CSV: Name,Company,Email,Phone,Status,Source,Owner."""
    _run("leads", file)


@import_app.command("opportunities")
def opportunities(file: Path = FileArg) -> None:
    """Opportunities CSV: Title,Account,Stage,Owner,Contacts,Amount,Close Date,Source."""
    _run("opportunities", file)

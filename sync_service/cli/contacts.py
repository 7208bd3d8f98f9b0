"""`crm-sync contact show|merge`: look at one contact; make one of two contacts that are one person.

Two contacts become one person's when an import meets a changed address (the importer's summary says so and
prints the merge). The merge is one transaction; once it has committed, every item is matched again as after
an import (SPEC §3.7), so mail from FROM's addresses follows INTO's opportunities.
"""

from __future__ import annotations

import typer
from sqlalchemy.orm import Session

from crm_store.db import transaction
from crm_store.models import Contact
from sync_service.cli.common import console, open_app
from sync_service.contacts.merge import apply_merge, find_contact, prepare_merge
from sync_service.contacts.merge_plan import MergePlan
from sync_service.contacts.view import contact_lines

contact_app = typer.Typer(
    help="Contacts: show one with its addresses, account and opportunities; merge two that are one person.",
    no_args_is_help=True,
)

_REF_HELP = "(see: crm-sync export contacts), or an address of the contact."


def _print(lines: list[str]) -> None:
    for line in lines:
        console.print(line, markup=False)


@contact_app.command("show")
def show(contact: str = typer.Argument(..., metavar="ID", help=f"The contact's id {_REF_HELP}")) -> None:
    """Show a contact: addresses (the primary first), phones, account, opportunities, linked activities."""
    with open_app() as app, app.sessions() as session:
        _print(contact_lines(session, find_contact(session, contact)))


@contact_app.command("merge")
def merge(
    source: str = typer.Argument(..., metavar="FROM_ID", help=f"The contact that goes away {_REF_HELP}"),
    target: str = typer.Argument(..., metavar="INTO_ID", help=f"The contact that stays {_REF_HELP}"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would move; change nothing."),
) -> None:
    """Merge contact FROM into contact INTO (one person, two contacts) and delete FROM.

    Moves FROM's addresses (INTO's primary stays primary), phones, activity links and the links a person
    removed, and opportunity roles; INTO's empty fields take FROM's values, otherwise INTO's stay. Then every
    item is matched again, so mail from FROM's addresses follows INTO's opportunities.
    """
    with open_app() as app:
        if dry_run:
            with app.sessions() as session:  # closed without a commit: nothing is written
                _, _, plan, names = _prepare(session, source, target)
            _print([f"would merge {names}: would move {plan.summary()}; nothing changed (--dry-run)"])
            return
        with transaction(app.sessions) as session:
            _, _, plan, names = _prepare(session, source, target)
            apply_merge(session, plan)
        _print([f"merged {names}: moved {plan.summary()}; contact {plan.source_id} deleted"])
        from sync_service.pipeline.rematch import rematch  # the pipeline: loaded only when needed

        _print([rematch(app).summary()])


def _prepare(session: Session, source: str, target: str) -> tuple[Contact, Contact, MergePlan, str]:
    source_row, target_row, plan = prepare_merge(session, source, target)
    names = f"contact {source_row.id} ({source_row.name}) into contact {target_row.id} ({target_row.name})"
    return source_row, target_row, plan, names

"""`crm-sync process|opportunity|lead …` and `crm-sync activity complete|cancel`: running the sales processes.

Every command runs in one transaction and prints where the process stands afterwards (stage, current step,
its planned activities with their hints) — once the transaction has committed, so what is printed has happened
(a reader that goes away early, ``… | head -1``, cannot roll the change back). `process export|load` are an
admin's way to edit a definition (``sync_service/process/admin.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.db import transaction
from crm_store.models import ProcessDefinition
from sync_service.cli.common import console, open_app
from sync_service.process import admin, service, store
from sync_service.process.definition import PLURALS, parse_process
from sync_service.process.model import Closing
from sync_service.process.views import process_view

process_app = typer.Typer(
    help="Sales processes (Corporate sale, Lead management): list and start them; export and load (edit) "
    "their definitions.",
    no_args_is_help=True,
)
opportunity_app = typer.Typer(help="Opportunities: show the process, set the stage by hand.", no_args_is_help=True)
lead_app = typer.Typer(help="Leads: set the status (Awaiting sale starts the corporate sale).", no_args_is_help=True)


def _print(lines: list[str]) -> None:
    for line in lines:
        console.print(line, markup=False)


@process_app.command("list")
def list_processes() -> None:
    """List the loaded process definitions and their stages."""
    with open_app() as app, app.sessions() as session:
        for row in session.scalars(select(ProcessDefinition).order_by(ProcessDefinition.id)):
            process = parse_process(row.definition)
            _print(
                [f"{process.name} (for {PLURALS[process.applies_to]}): {' → '.join(s.name for s in process.stages)}"]
            )
            if process.terminal_stages:
                _print([f"  closing stages: {', '.join(t.name for t in process.terminal_stages)}"])


@process_app.command("export")
def export_process(
    name: str = typer.Argument(..., help='The process, e.g. "Corporate sale" or "Lead management".'),
) -> None:
    """Print a process's stored definition as YAML (the shape of the shipped files), to edit and load back.

    For example: `crm-sync process export "Corporate sale" > corporate_sale.yaml`.
    """
    with open_app() as app, app.sessions() as session:
        text = admin.export_yaml(session, name)
    sys.stdout.write(text)


@process_app.command("load")
def load_process(
    file: Path = typer.Argument(..., metavar="FILE.yaml", help="A process definition, e.g. an edited export."),
) -> None:
    """Replace the stored definition of the process FILE names (an edited export), after checking it whole.

    A file the definition checks reject changes nothing (exit 1, the reason on one line); so does one that drops
    a stage or step where opportunities or leads running the process stand. A loaded definition counts as
    edited by a person: `crm-sync init` keeps it instead of a newer shipped version.
    """
    with open_app() as app, transaction(app.sessions) as session:
        loaded = admin.load_definition(session, file)
    if loaded.outcome == admin.UNCHANGED:
        _print([f"process {loaded.name!r}: unchanged ({file} is the stored definition)"])
    elif loaded.outcome == admin.SHIPPED:
        _print([f"process {loaded.name!r}: loaded from {file}; it is the shipped definition again (init updates it)"])
    else:
        _print([f"process {loaded.name!r}: loaded from {file} (an edited copy: `crm-sync init` keeps it)"])


@process_app.command("start")
def start(
    name: str = typer.Argument(..., help='The process, e.g. "Corporate sale" or "Lead management".'),
    opportunity: int | None = typer.Option(
        None, "--opportunity", metavar="ID", help="An existing opportunity: the process begins at its current stage."
    ),
    lead: int | None = typer.Option(None, "--lead", metavar="ID", help="A lead (for the Lead management process)."),
    title: str | None = typer.Option(None, "--title", help="A new opportunity's title (with --account)."),
    account: str | None = typer.Option(None, "--account", metavar="NAME", help="The new opportunity's account."),
    owner: str | None = typer.Option(
        None, "--owner", metavar="EMAIL", help="The new opportunity's owner (default: the account's owner)."
    ),
) -> None:
    """Start a process for an opportunity (--opportunity ID, or a new one: --title T --account NAME) or a lead.

    The first steps create planned activities for the owner; synced emails, meetings and calls then complete
    them by themselves, or complete them by hand with `crm-sync activity complete ID --result R`.
    """
    chosen = [o for o in (opportunity, lead, title) if o is not None]
    if len(chosen) != 1:
        raise typer.BadParameter("give exactly one of --opportunity ID, --lead ID or --title T --account NAME")
    if (title is None) != (account is None):
        raise typer.BadParameter("a new opportunity needs both --title and --account")
    if owner is not None and title is None:
        raise typer.BadParameter("--owner is for a new opportunity (with --title and --account)")
    new = service.NewOpportunity(title, account, owner) if title is not None and account is not None else None

    def begin(session: Session) -> list[str]:
        subject = service.start_process(
            session, name, datetime.now(UTC), opportunity_id=opportunity, lead_id=lead, new=new
        )
        return process_view(session, subject).lines()

    _change(begin)


def activity_complete_command(
    activity_id: int = typer.Argument(..., metavar="ID", help="The activity's id."),
    result: str | None = typer.Option(
        None, "--result", "-r", help="One of the step's results (default: the step's default result)."
    ),
) -> None:
    """Complete a planned activity. A process step's activity completes the step and opens the next one."""
    _change(
        lambda session: _after(
            session,
            f"activity {activity_id} completed",
            service.complete_activity(session, activity_id, result, datetime.now(UTC)),
        )
    )


def activity_cancel_command(activity_id: int = typer.Argument(..., metavar="ID", help="The activity's id.")) -> None:
    """Cancel a planned activity. Cancelling a process step's activity ends its stage early."""
    _change(
        lambda session: _after(
            session,
            f"activity {activity_id} cancelled",
            service.cancel_activity(session, activity_id, datetime.now(UTC)),
        )
    )


def _change(change: Callable[[Session], list[str]]) -> None:
    """Run ``change`` in one transaction; print its lines once committed. A lead it made an opportunity of
    (``Awaiting sale``) has its earlier mail and meetings matched again (SPEC §3.7), as after an import."""
    with open_app() as app:
        with transaction(app.sessions) as session:
            lines = change(session)
            converted = service.take_converted(session)
        _print(lines)
        if converted:
            from sync_service.pipeline.rematch import rematch  # the pipeline: loaded only when needed

            _print([rematch(app).summary()])


def _after(session: Session, message: str, subject: store.Subject | None) -> list[str]:
    return [message, *(process_view(session, subject).lines() if subject is not None else [])]


@opportunity_app.command("show")
def show(opportunity_id: int = typer.Argument(..., metavar="ID", help="The opportunity's id.")) -> None:
    """Show an opportunity's stage, current step and open step activities with their hints."""
    with open_app() as app, app.sessions() as session:
        _print(process_view(session, store.opportunity(session, opportunity_id)).lines())


@opportunity_app.command("stage")
def stage(
    opportunity_id: int = typer.Argument(..., metavar="ID", help="The opportunity's id."),
    stage_name: str = typer.Argument(..., metavar="STAGE", help='The stage, e.g. "Negotiations" or "Closed lost".'),
    lost_reason: str | None = typer.Option(None, "--lost-reason", metavar="R", help="Required for Closed lost."),
    won_reason: str | None = typer.Option(None, "--won-reason", metavar="R", help="For Closed won."),
    competitor: str | None = typer.Option(None, "--competitor", metavar="C", help="Closed lost: who won."),
) -> None:
    """Set the stage by hand: its steps start again, the left stage's open step activities are cancelled."""
    closing = Closing(lost_reason=lost_reason, won_reason=won_reason, competitor=competitor)
    _change(
        lambda session: process_view(
            session, service.choose_stage(session, opportunity_id, stage_name, closing, datetime.now(UTC))
        ).lines()
    )


@lead_app.command("status")
def lead_status(
    lead_id: int = typer.Argument(..., metavar="ID", help="The lead's id."),
    status: str = typer.Argument(..., help='A lead status, e.g. "Prospect" or "Awaiting sale".'),
) -> None:
    """Set a lead's status. `Awaiting sale` creates an opportunity for the lead and starts the corporate sale."""

    def set_status(session: Session) -> list[str]:
        started = service.set_lead_status(session, lead_id, status, datetime.now(UTC))
        subject = store.lead(session, lead_id)
        lines = [f"{subject.label}: status {subject.row.status}"]
        for opportunity in started:
            lines += process_view(session, store.Subject(store.OPPORTUNITY, opportunity)).lines()
        return lines

    _change(set_status)

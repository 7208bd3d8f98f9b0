"""`crm-sync review assign`, `crm-sync activity link|unlink`, `crm-sync match explain|rematch` (SPEC §3.4, §3.7).

A person's choice is written in one transaction, then the item is matched again so that everything no person
decided (primary account, review queue) follows; links a person made or removed are never overridden.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import typer
from sqlalchemy.orm import Session

from crm_store.db import transaction
from crm_store.models import Activity
from sync_service.bootstrap import App
from sync_service.cli.common import console, open_app
from sync_service.pipeline import manual_links
from sync_service.pipeline.explain import explain_activity, explain_message
from sync_service.pipeline.manual_links import LinkKind

review_app = typer.Typer(
    help="The review queue (list it: crm-sync export review): activities whose opportunity needs a choice.",
    no_args_is_help=True,
)
activity_app = typer.Typer(
    help="Activities: link or unlink records by hand (kept by matching); complete or cancel planned ones.",
    no_args_is_help=True,
)
match_app = typer.Typer(help="Matching: why an item was linked; match everything again.", no_args_is_help=True)

ActivityArg = typer.Argument(..., help="The activity id (see: crm-sync export activities).")
ContactOpt = typer.Option(None, "--contact", metavar="ID", help="A contact id.")
AccountOpt = typer.Option(None, "--account", metavar="ID", help="An account id.")
OpportunityOpt = typer.Option(None, "--opportunity", metavar="ID", help="An opportunity id.")
LeadOpt = typer.Option(None, "--lead", metavar="ID", help="A lead id.")


def _rederive(app: App, activity_id: int, item_id: int | None, now: datetime) -> None:
    from sync_service.pipeline.rederive import rederive  # the processing pipeline: loaded when needed

    if rederive(app, activity_id, item_id, now):
        console.print("automatic links derived again after the change")


@review_app.command("assign")
def assign(
    activity_id: int = ActivityArg,
    opportunity_id: int = typer.Argument(..., help="The opportunity chosen (see: crm-sync export review)."),
) -> None:
    """Link the activity to this opportunity as a person's choice: resolves its review item, moves its
    documents to the opportunity, and re-matching keeps it."""
    now = datetime.now(UTC)
    with open_app() as app:
        with transaction(app.sessions) as session:
            activity, resolved = manual_links.assign_opportunity(session, activity_id, opportunity_id, now)
            title = activity.opportunity.title if activity.opportunity else "?"
            documents, item_id = len(activity.documents), activity.item_id
        review = "review item resolved; " if resolved else ""
        console.print(
            f"activity {activity_id} → opportunity {title} [{opportunity_id}] (chosen by a person); "
            f"{review}{documents} document{'' if documents == 1 else 's'} moved with it"
        )
        _rederive(app, activity_id, item_id, now)


def _one_target(
    contact: int | None, account: int | None, opportunity: int | None, lead: int | None
) -> tuple[LinkKind, int]:
    given: list[tuple[LinkKind, int | None]] = [
        ("contact", contact),
        ("account", account),
        ("opportunity", opportunity),
        ("lead", lead),
    ]
    chosen = [(kind, value) for kind, value in given if value is not None]
    if len(chosen) != 1:
        raise typer.BadParameter("give exactly one of --contact, --account, --opportunity, --lead")
    kind, value = chosen[0]
    assert value is not None
    return kind, value


@activity_app.command("link")
def link(
    activity_id: int = ActivityArg,
    contact: int | None = ContactOpt,
    account: int | None = AccountOpt,
    opportunity: int | None = OpportunityOpt,
    lead: int | None = LeadOpt,
) -> None:
    """Link a contact, account, opportunity or lead to the activity; re-matching keeps a link made by a person."""

    def change(session: Session, kind: LinkKind, target: int, now: datetime) -> tuple[Activity, str]:
        return manual_links.link(session, activity_id, kind, target, now), "linked by a person"

    _change_link(activity_id, _one_target(contact, account, opportunity, lead), change)


@activity_app.command("unlink")
def unlink(
    activity_id: int = ActivityArg,
    contact: int | None = ContactOpt,
    account: int | None = AccountOpt,
    opportunity: int | None = OpportunityOpt,
    lead: int | None = LeadOpt,
) -> None:
    """Remove a contact, account, opportunity or lead link; re-matching remembers it and never adds it back."""

    def change(session: Session, kind: LinkKind, target: int, now: datetime) -> tuple[Activity, str]:
        activity, had = manual_links.unlink(session, activity_id, kind, target)
        return activity, f"{'removed' if had else 'was not linked'}; matching will not link it again"

    _change_link(activity_id, _one_target(contact, account, opportunity, lead), change)


def _change_link(
    activity_id: int,
    target: tuple[LinkKind, int],
    change: Callable[[Session, LinkKind, int, datetime], tuple[Activity, str]],
) -> None:
    """One person's link change in its own transaction, reported in one line, then the automatic links follow."""
    kind, target_id = target
    now = datetime.now(UTC)
    with open_app() as app:
        with transaction(app.sessions) as session:
            activity, what = change(session, kind, target_id, now)
            item_id = activity.item_id
        console.print(f"activity {activity_id}: {kind} {target_id} {what}")
        _rederive(app, activity_id, item_id, now)


@match_app.command("explain")
def explain(
    activity_id: int | None = typer.Argument(None, help="The activity id."),
    message_id: str | None = typer.Option(
        None, "--message-id", metavar="ID", help="Explain an email by its Message-ID (also one that was not logged)."
    ),
) -> None:
    """Which rule linked an item and why, the links a person set or removed, and what matching says now."""
    if (activity_id is None) == (message_id is None):
        raise typer.BadParameter("give an ACTIVITY_ID or --message-id, not both")
    with open_app() as app, app.sessions() as session:
        if activity_id is not None:
            lines = explain_activity(app, session, activity_id)
        else:
            assert message_id is not None
            lines = explain_message(app, session, message_id)
    for line in lines:
        console.print(line, markup=False)


@match_app.command("rematch")
def rematch_command() -> None:
    """Match every item seen earlier again (runs by itself after each import)."""
    from sync_service.pipeline.rematch import rematch

    with open_app() as app:
        console.print(rematch(app).summary())

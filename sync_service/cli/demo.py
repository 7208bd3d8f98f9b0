"""`crm-sync demo`: a sample CRM and two sample mailboxes, synced through the real pipeline.

Runs on a fresh machine with no server: SQLite and the in-process (embedded) mode, in its own folder.
"""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table
from sqlalchemy import func, select

from crm_store.db import transaction
from crm_store.models import Activity, Contact, Document, Opportunity
from sync_service import mailboxes
from sync_service.bootstrap import App
from sync_service.cli.common import console, open_app, print_table
from sync_service.cli.setup import initialise
from sync_service.config import Settings
from sync_service.exports import export_quarantine, export_review
from sync_service.status import skipped_counts

INTERNAL_DOMAIN = "northwind-sales.example"


def _import_sample_crm(app: App, data: Path) -> None:
    from sync_service.importers import import_accounts, import_contacts, import_leads, import_opportunities

    steps = (
        (import_accounts, "accounts.csv"),
        (import_contacts, "contacts.csv"),
        (import_leads, "leads.csv"),
        (import_opportunities, "opportunities.csv"),
    )
    for importer, name in steps:
        with transaction(app.sessions) as session:
            console.print("  " + importer(session, data / name).summary())


def _add_mailboxes(app: App, folders: dict[str, Path], reps: dict[str, str]) -> None:
    with transaction(app.sessions) as session:
        for name, path in folders.items():
            owner = reps[name]
            mailboxes.add_mailbox(session, name, owner, f"maildir://{path.resolve()}", None, ())
            console.print(f"  mailbox {name} ({owner}): maildir://{path.resolve()}")


def _summary(app: App) -> None:
    with app.sessions() as session:
        table = Table(
            "opportunity", "stage", "emails", "meetings", "calls", "documents", title="Activities per opportunity"
        )
        per_opp: Counter[tuple[int | None, str]] = Counter(
            (opp_id, kind)
            for opp_id, kind in session.execute(
                select(Activity.opportunity_id, Activity.type).where(
                    Activity.opportunity_id.is_not(None),
                    Activity.origin == "sync",  # not the process's planned steps
                )
            )
        )
        docs = dict(
            session.execute(select(Document.opportunity_id, func.count()).group_by(Document.opportunity_id)).all()
        )
        for opp in session.scalars(select(Opportunity).order_by(Opportunity.id)):
            table.add_row(
                f"[{opp.id}] {opp.title}",
                opp.stage,
                *(str(per_opp[(opp.id, t)]) for t in ("email", "meeting", "call")),
                str(docs.get(opp.id, 0)),
            )
        print_table(table)
        unlinked = (
            session.scalar(
                select(func.count())
                .select_from(Activity)
                .where(Activity.opportunity_id.is_(None), Activity.origin == "sync")
            )
            or 0
        )
        console.print(f"{unlinked} activities are linked to an account or lead only (no single opportunity)")
        statuses = Counter(
            session.execute(select(Activity.type, Activity.status).where(Activity.origin == "sync")).all()
        )
        console.print(
            "calendar: " + ", ".join(f"{n} {t} {s}" for (t, s), n in sorted(statuses.items()) if t != "email")
        )
        skipped = skipped_counts(session)
        console.print(
            "not logged (private or automated): "
            + (", ".join(f"{r} {n}" for r, n in sorted(skipped.items())) or "none")
        )
        created = session.scalars(select(Contact).where(Contact.source == "sync")).all()
        for contact in created:
            console.print(f"contact created by sync: {contact.name} <{contact.primary_email}>")
        for q in export_quarantine(session):
            console.print(f"quarantined: {q['mailbox']} {q['external_id']}: {q['reason']}")
        for r in export_review(session):
            titles = ", ".join(str(c["title"]) for c in r["candidates"])
            console.print(f"review: activity {r['activity_id']} — {r['reason']} ({titles})")


def demo_command(
    directory: Path = typer.Option(
        Path("crm-sync-demo"), "--dir", help="Folder for the demo database, documents and mailboxes."
    ),
) -> None:
    """Embedded demo: sample CRM + sample mailboxes and calendars, a full sync, and a summary."""
    # The pipeline is imported when the demo runs, not whenever `crm-sync` starts.
    from sync_service.cli.sync import print_report, run_with_progress
    from sync_service.demo.sample import DATA_DIR, REPS, write_sample_mailboxes
    from sync_service.process.service import start_for_open_opportunities
    from sync_service.process.views import automatic_progress

    directory = directory.resolve()
    for leftover in ("demo.db", "demo.db-wal", "demo.db-shm", "data", "mailboxes"):
        target = directory / leftover
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        database_url=f"sqlite:///{directory / 'demo.db'}",
        data_dir=directory / "data",
        internal_domains=frozenset({INTERNAL_DOMAIN}),
    )
    with open_app(require_schema=False, app_settings=settings) as app:
        console.rule("crm-sync demo")
        initialise(app)
        console.print(f"database: {directory / 'demo.db'}\nimporting the sample CRM:")
        _import_sample_crm(app, DATA_DIR)
        with transaction(app.sessions) as session:  # SPEC §2: an existing opportunity begins at its stage
            started = start_for_open_opportunities(session, "Corporate sale", datetime.now(UTC))
        console.print(f"  Corporate sale started for {len(started)} opportunities at their current stage")
        folders = write_sample_mailboxes(directory / "mailboxes", datetime.now(UTC))
        reps = {email.partition("@")[0]: email for email, _name in REPS}
        _add_mailboxes(app, folders, reps)
        console.rule("sync")
        print_report(run_with_progress(app, None))
        console.rule("summary")
        _summary(app)
        console.rule("sales processes (steps completed by synced mail and meetings)")
        with app.sessions() as session:
            for line in automatic_progress(session):
                console.print(line, markup=False)
    console.print(
        f"\nexplore: CRM_DATABASE_URL=sqlite:///{directory / 'demo.db'} CRM_DATA_DIR={directory / 'data'} "
        "crm-sync export activities --format json"
    )

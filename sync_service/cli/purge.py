"""`crm-sync purge skipped [--older-than DAYS] [--dry-run]`: remove what is kept of mail that was not logged, once
it is older than the retention, and give the space back (docs/deployment.md, "What is kept of mail that is not
logged")."""

from __future__ import annotations

import json
import sys

import typer

from sync_service.cli.common import console, open_app, progress_bars, settings
from sync_service.purge import PurgeReport, purge_skipped

purge_app = typer.Typer(
    help="Remove what the service keeps of mail it did not log, after a retention period.", no_args_is_help=True
)


def _usage_error(message: str) -> None:
    """A usage error as one line on standard error, exit 2 (SPEC §5)."""
    print(f"crm-sync: usage error: {message} (see crm-sync purge skipped --help)", file=sys.stderr)
    raise typer.Exit(2)


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def print_report(report: PurgeReport, min_age_minutes: float) -> None:
    blobs, would = report.blobs, report.dry_run
    console.print(
        f"{'Would purge' if would else 'Purged'} {_plural(report.purged, 'skipped email')} synced more than "
        f"{_plural(report.days, 'day')} ago (before {report.cutoff:%Y-%m-%d %H:%M} UTC): their facts, and the bytes "
        f"of {_plural(report.copies, 'mailbox copy', 'mailbox copies')}.",
        markup=False,
    )
    if report.kept:
        kept = ", ".join(f"{n:,} {reason}" for reason, n in sorted(report.kept.items()))
        console.print(f"Kept although older: {kept}.", markup=False)
    inside = f", {_size(blobs.unindexed)} left inside packs that stay" if blobs.unindexed else ""
    loose = f", {_plural(blobs.loose_held, 'single file')}" if blobs.loose_held else ""
    console.print(
        f"Blob store: {_plural(blobs.packs_deleted, 'pack')} deleted, {blobs.packs_rewritten:,} rewritten, "
        f"{blobs.packs_thinned:,} thinned{loose}; {_size(blobs.released)} "
        f"{'would be released' if would else 'released'}{inside}.",
        markup=False,
    )
    if not would:
        restored = f" {_plural(blobs.restored, 'blob')} referenced again were kept." if blobs.restored else ""
        console.print(
            f"Freed {_size(blobs.freed)} now; {_size(blobs.held)} held until a purge at least "
            f"{min_age_minutes:g} minutes after its release (a sync running meanwhile may refer to it).{restored}",
            markup=False,
        )
    notes = []
    if blobs.young:
        notes.append(f"{_plural(blobs.young, 'pack')} younger than {min_age_minutes:g} minutes or still held")
    if blobs.changed:
        notes.append(f"{_plural(blobs.changed, 'pack')} whose blobs were referenced again meanwhile")
    if blobs.damaged:
        notes.append(f"{_plural(blobs.damaged, 'pack')} with damaged bytes")
    if blobs.missing:
        notes.append(f"{_plural(blobs.missing, 'pack file')} missing")
    if notes:
        console.print("Left as they are: " + "; ".join(notes) + ".", markup=False)


@purge_app.command("skipped")
def skipped_command(
    older_than: int | None = typer.Option(
        None,
        "--older-than",
        metavar="DAYS",
        min=0,
        help="Purge skipped mail synced more than DAYS days ago (default: CRM_SKIPPED_RETENTION_DAYS).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be purged and released; change nothing."),
    min_age: float = typer.Option(
        60.0,
        "--min-age",
        metavar="MINUTES",
        min=0.0,
        help="Packs younger than this are left alone, and released files are deleted only after this long "
        "(a sync running meanwhile may still refer to them); 0 only when no sync runs.",
    ),
    rewrite_below: int = typer.Option(
        100,
        "--rewrite-below",
        metavar="PERCENT",
        min=0,
        max=100,
        help="Rewrite a pack whose referenced bytes are below this share of it; the default, 100, leaves no "
        "purged byte in any pack (lower: less writing, purged bytes stay on disk, unreadable).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Purge skipped mail (private, all-internal, bulk, never-log: never logged) synced more than DAYS days ago:
    its stored bytes and its kept facts (subject, addresses, references) go, so re-matching can no longer log it;
    only its Message-ID stays, so that the sync knows the message when it sees it again.
    Logged mail, its documents, calendar items and quarantined items are never touched. Then compact the blob
    store: packs nothing refers to any more are deleted, mostly unreferenced ones rewritten."""
    app_settings = settings()
    days = older_than if older_than is not None else app_settings.skipped_retention_days
    if days is None:
        _usage_error("give --older-than DAYS, or set CRM_SKIPPED_RETENTION_DAYS")
        return
    with open_app(app_settings=app_settings) as app, progress_bars() as progress:
        items = progress.add_task("purging skipped mail", total=None, visible=False)
        packs = progress.add_task("compacting packs", total=None, visible=False)

        def on_items(done: int, total: int) -> None:
            progress.update(items, completed=done, total=total, visible=True, refresh=True)

        def on_packs(done: int, total: int) -> None:
            progress.update(packs, completed=done, total=total, visible=True, refresh=True)

        report = purge_skipped(
            app,
            days,
            dry_run=dry_run,
            min_age=min_age * 60,
            rewrite_below=rewrite_below / 100,
            on_items=on_items,
            on_packs=on_packs,
        )
    if as_json:
        print(json.dumps(report.as_dict()))
    else:
        print_report(report, min_age)

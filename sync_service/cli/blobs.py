"""`crm-sync blobs orphans`: pack files a killed sync left behind (docs/deployment.md, "Backups and upgrades")."""

from __future__ import annotations

import typer

from sync_service.cli.common import console, open_app

blobs_app = typer.Typer(help="The document store under CRM_DATA_DIR.", no_args_is_help=True)


@blobs_app.command("orphans")
def orphans_command(
    delete: bool = typer.Option(False, "--delete", help="Remove them (without it, only list them)."),
    min_age: float = typer.Option(
        60.0, "--min-age", min=1.0, help="Only files older than this many minutes (a sync may be writing newer ones)."
    ),
) -> None:
    """List (or remove) pack files no stored item refers to: a sync killed between writing a page's pack and
    committing the page leaves one. Nothing refers to their bytes, so removing them loses nothing. A pack that
    `crm-sync purge skipped` released and still holds is never listed, whatever --min-age: that purge deletes it."""
    with open_app() as app:
        found = app.blobs.unreferenced_packs(min_age_seconds=min_age * 60)
    for path, size in found:
        console.print(f"{path}  {size} bytes")
        if delete:
            path.unlink(missing_ok=True)
    total = sum(size for _path, size in found)
    done = "removed" if delete else "found (pass --delete to remove them)"
    console.print(f"{len(found)} unreferenced pack file(s), {total / 1048576:.1f} MiB, {done}")

"""`crm-sync init`, `crm-sync secret-key` and `crm-sync secret-key rotate`."""

from __future__ import annotations

import typer

from crm_store.db import transaction
from crm_store.schema_version import newer_schema
from crm_store.secrets import generate_key
from crm_store.seed import seed_defaults
from sync_service.bootstrap import App
from sync_service.cli.common import console, open_app
from sync_service.errors import CrmSyncError
from sync_service.mailbox_secrets import rotate_secrets


def initialise(app: App) -> dict[str, int]:
    from crm_store.migrate import upgrade  # alembic: only the commands that migrate load it

    newer = newer_schema(app.engine)
    if newer is not None:  # Alembic would say "Can't locate revision identified by '0017'"
        raise CrmSyncError(newer)
    upgrade(app.engine)
    app.settings.data_dir.mkdir(parents=True, exist_ok=True)
    with transaction(app.sessions) as session:
        return seed_defaults(session)


def init_command() -> None:
    """Create or upgrade the database; seed default lookups and processes. Safe to run again."""
    with open_app(require_schema=False) as app:
        added = initialise(app)
        url = app.engine.url.render_as_string(hide_password=True)
    console.print(f"database ready: {url}")
    console.print(f"added {added['lookups']} lookup values and {added['processes']} processes")


# `crm-sync secret-key` alone prints a new key, as it always has (README, docs, docker-compose use it):
# a group whose callback runs when no subcommand is given.
secret_key_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)


@secret_key_app.callback(invoke_without_command=True)
def secret_key_command(ctx: typer.Context) -> None:
    """Print a new key for CRM_SECRET_KEY.

    To replace the key: put the new one first and the old one after a comma, restart every process, run
    `crm-sync secret-key rotate`, then remove the old key (docs/deployment.md)."""
    if ctx.invoked_subcommand is None:
        typer.echo(generate_key())


@secret_key_app.command("rotate")
def rotate_command() -> None:
    """Re-encrypt every stored mailbox secret under the first key of CRM_SECRET_KEY, so the others can go.

    Safe to run again; if a secret decrypts with none of the keys, nothing is changed."""
    with open_app() as app, transaction(app.sessions) as session:
        rotation = rotate_secrets(session, app.settings.secret_keys)
    plural = "" if rotation.rotated == 1 else "s"
    console.print(
        f"re-encrypted {rotation.rotated} mailbox secret{plural} under the first key of CRM_SECRET_KEY "
        f"({rotation.current} already were)"
    )

"""`crm-sync init` and `crm-sync secret-key`."""

from __future__ import annotations

import typer

from crm_store.db import transaction
from crm_store.secrets import generate_key
from crm_store.seed import seed_defaults
from sync_service.bootstrap import App
from sync_service.cli.common import console, open_app


def initialise(app: App) -> dict[str, int]:
    from crm_store.migrate import upgrade  # alembic: only the commands that migrate load it

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


def secret_key_command() -> None:
    """Print a new key for CRM_SECRET_KEY (to rotate: put the new key first, keep the old one after a comma)."""
    typer.echo(generate_key())

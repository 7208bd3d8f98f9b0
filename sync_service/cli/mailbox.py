"""`crm-sync mailbox add|list|secret|remove|pause|resume|resync`."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import typer
from rich.table import Table
from sqlalchemy import select

from crm_store.db import transaction
from crm_store.models import Mailbox
from crm_store.models.sync import FAILED
from sync_service import mailbox_secrets, mailboxes
from sync_service.cli.common import console, is_terminal, open_app, print_table
from sync_service.cli.workers import drop_dead_letters, request_sync
from sync_service.connectors.registry import needs_secret
from sync_service.errors import ConfigError
from sync_service.status import stuck_mailboxes

mailbox_app = typer.Typer(help="Manage the mailboxes and calendars that are synced.", no_args_is_help=True)


def _read_secret(source: str, secret_env: str | None) -> str | None:
    if secret_env:
        value = os.environ.get(secret_env)
        if not value:
            raise ConfigError(f"environment variable {secret_env} is not set or empty")
        return value
    if needs_secret(source):
        if not is_terminal():
            raise ConfigError("this source needs a secret: pass --secret-env VAR (no terminal to prompt on)")
        return str(typer.prompt("Secret (password, client secret or refresh token)", hide_input=True))
    return None


@mailbox_app.command("add")
def add(
    name: str = typer.Argument(..., help="A short unique name, e.g. alice-inbox."),
    owner: str = typer.Option(..., "--owner", help="The rep's email; becomes a user if new."),
    source: str = typer.Option(..., "--source", help="Source URL, e.g. maildir:///srv/mail/alice."),
    secret_env: str | None = typer.Option(
        None, "--secret-env", metavar="VAR", help="Read the source's secret from this environment variable."
    ),
) -> None:
    """Add a mailbox. Its secret is stored encrypted with CRM_SECRET_KEY and never shown."""
    mailboxes.refuse_password_in_url(source)  # before asking for a secret the URL must not hold
    secret = _read_secret(source, secret_env)
    with open_app() as app, transaction(app.sessions) as session:
        mailboxes.check_source(source, secret)
        mailboxes.add_mailbox(session, name, owner, source, secret, app.settings.secret_keys)
    console.print(f"mailbox {name} added ({mailboxes.redact_url(source)})")


@mailbox_app.command("secret")
def secret(
    name: str = typer.Argument(..., help="The mailbox name."),
    secret_env: str | None = typer.Option(
        None, "--secret-env", metavar="VAR", help="Read the new secret from this environment variable."
    ),
) -> None:
    """Replace a mailbox's stored secret (a password changed at the provider); its sync cursors stay."""
    with open_app() as app:
        with app.sessions() as session:
            source = mailbox_secrets.mailbox_source(session, name)
        new_secret = _read_secret(source, secret_env)  # prompts (on a terminal) only for a source that needs one
        with transaction(app.sessions) as session:
            state = mailbox_secrets.replace_secret(session, name, new_secret, app.settings.secret_keys).state
    console.print(f"mailbox {name}: secret replaced")
    if state == FAILED:  # a refused login made it failed; it stays so until a person says the cause is gone
        console.print(f"mailbox {name} is failed: run crm-sync mailbox resume {name} to sync it again")


@mailbox_app.command("list")
def list_() -> None:
    """List mailboxes with their state (in Redis mode, 'stuck' for one syncing with no worker on it)."""
    from workers.liveness import redis_liveness  # Redis mode only: who holds the mailboxes' locks

    with open_app() as app:
        with app.sessions() as session:
            rows = mailboxes.list_mailboxes(session)
            names = dict(session.execute(select(Mailbox.id, Mailbox.name)).all())
        reader = redis_liveness(app.settings)
        stuck_ids = stuck_mailboxes(app.engine, reader, datetime.now(UTC)) if reader is not None else None
    stuck = {names[i] for i in stuck_ids or () if i in names}
    table = Table("name", "owner", "source", "state", "last success", "items", "last error")
    for m in rows:
        table.add_row(
            m.name,
            m.owner,
            m.source,
            "stuck" if m.name in stuck else m.state,
            m.last_success_at.strftime("%Y-%m-%d %H:%M") if m.last_success_at else "never",
            str(m.items_synced),
            ("(over) " if _error_past(m) else "") + (m.last_error or "")[:60],
        )
    if rows:
        print_table(table)
    else:
        console.print("no mailboxes yet: crm-sync mailbox add NAME --owner EMAIL --source URL")


def _error_past(m: mailboxes.MailboxInfo) -> bool:
    """A successful sync came after the last error (as ``status`` marks it)."""
    return bool(m.last_error and m.last_error_at and m.last_success_at and m.last_success_at > m.last_error_at)


def _simple(action: str, doc: str) -> None:
    def command(name: str = typer.Argument(..., help="The mailbox name.")) -> None:
        with open_app() as app:
            with transaction(app.sessions) as session:
                mailbox_id = session.scalar(select(Mailbox.id).where(Mailbox.name == name))
                getattr(mailboxes, f"{action}_mailbox")(session, name)
            # Redis mode: the next sync starts now rather than at the mailbox's next interval.
            queued = False
            if action in ("resume", "resync") and mailbox_id is not None:
                queued = request_sync(app.settings, mailbox_id)
            # … and a removed mailbox's dead letters go with it (they could only do nothing).
            dropped = drop_dead_letters(app.settings, mailbox_id) if action == "remove" and mailbox_id else None
        console.print(f"mailbox {name}: {action}d" if action.endswith("e") else f"mailbox {name}: {action}ed")
        if queued:
            console.print(f"mailbox {name}: sync queued")
        if dropped:
            console.print(f"mailbox {name}: {dropped} dead-lettered messages dropped")

    command.__doc__ = doc
    mailbox_app.command(action)(command)


_simple("remove", "Remove a mailbox and its sync state; logged activities and documents stay.")
_simple("pause", "Stop syncing a mailbox until resumed.")
_simple("resume", "Resume a paused or failed mailbox.")
_simple("resync", "Read the whole mailbox again on the next sync (no duplicates are created).")

"""`crm-sync mailbox add|list|secret|source|remove|pause|resume|resync`."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import typer
from rich.table import Table
from sqlalchemy import select

from crm_store.db import transaction
from crm_store.models import Mailbox
from crm_store.models.sync import FAILED, PAUSED
from sync_service import mailbox_secrets, mailboxes
from sync_service.cli.common import console, is_terminal, open_app, print_table
from sync_service.cli.workers import drop_dead_letters, request_sync
from sync_service.connectors.registry import needs_secret
from sync_service.dashboard.wording import plural
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


SHARED_HELP = (
    "Sync a source that another mailbox already syncs. Meant for one account whose folders are split between "
    "mailboxes (?folders=…, e.g. a shared account's folders for different reps); otherwise everything is "
    "fetched twice and listed under both mailboxes."
)


@mailbox_app.command("add", short_help="Add a mailbox; its secret is stored encrypted and never shown.")
def add(
    name: str = typer.Argument(..., help="A short unique name, e.g. alice-inbox."),
    owner: str = typer.Option(..., "--owner", help="The rep's email; becomes a user if new."),
    source: str = typer.Option(..., "--source", help="Source URL, e.g. maildir:///srv/mail/alice."),
    secret_env: str | None = typer.Option(
        None, "--secret-env", metavar="VAR", help="Read the source's secret from this environment variable."
    ),
    allow_shared_source: bool = typer.Option(False, "--allow-shared-source", help=SHARED_HELP),
) -> None:
    """Add a mailbox. Its secret is stored encrypted with CRM_SECRET_KEY and never shown. A source that another
    mailbox already syncs (the same path, or the same host and user, however written) is refused, unless
    --allow-shared-source."""
    mailboxes.refuse_password_in_url(source)  # before asking for a secret the URL must not hold
    with open_app() as app:
        if not allow_shared_source:  # before asking for a secret that would be of no use
            with app.sessions() as session:
                mailboxes.refuse_shared_source(session, source, other_than=name)  # a taken name: said below
        secret = _read_secret(source, secret_env)
        with transaction(app.sessions) as session:
            mailboxes.check_source(source, secret)
            mailboxes.add_mailbox(session, name, owner, source, secret, app.settings.secret_keys)
            if not allow_shared_source:  # again, in the transaction: another add may have come meanwhile
                mailboxes.refuse_shared_source(session, source, other_than=name)
    console.print(f"mailbox {name} added ({mailboxes.redact_url(source)})")


@mailbox_app.command("source", short_help="Change a mailbox's source URL; the next sync reads it from the start.")
def source_(
    name: str = typer.Argument(..., help="The mailbox name."),
    url: str = typer.Argument(..., metavar="URL", help="The new source URL, e.g. maildir:///srv/mail/alice-new."),
    secret_env: str | None = typer.Option(
        None,
        "--secret-env",
        metavar="VAR",
        help="Read a new secret from this environment variable (default: keep the stored one).",
    ),
    allow_shared_source: bool = typer.Option(False, "--allow-shared-source", help=SHARED_HELP),
) -> None:
    """Change a mailbox's source URL (a moved Maildir, a renamed folder, a new server), checked as add checks
    it. The mailbox forgets the old source's copies, as remove does, and the next sync reads the new source from
    the start: what it holds is recognised by Message-ID and UID, so nothing is doubled. Meetings ahead that
    only the old source carried are cancelled until the new one brings them back; logged mail stays. The stored
    secret is kept unless --secret-env gives a new one (dropped if the new source needs none). A failed or
    degraded mailbox syncs again; a paused one stays paused, and reads the new source once resumed."""
    mailboxes.refuse_password_in_url(url)
    with open_app() as app:
        with app.sessions() as session:
            mailbox_secrets.mailbox_source(session, name)  # no such mailbox: one line, exit 1
            has_secret = bool(session.scalar(select(Mailbox.secret.is_not(None)).where(Mailbox.name == name)))
            if not allow_shared_source:  # before asking for a secret that would be of no use
                mailboxes.refuse_shared_source(session, url, other_than=name)
        new_secret = _read_secret(url, secret_env) if secret_env or not has_secret else None
        with transaction(app.sessions) as session:
            if not allow_shared_source:
                mailboxes.refuse_shared_source(session, url, other_than=name)
            change = mailboxes.change_source(session, name, url, new_secret, app.settings.secret_keys)
            mailbox_id = session.scalar(select(Mailbox.id).where(Mailbox.name == name))
        queued = change.state != PAUSED and mailbox_id is not None and request_sync(app.settings, mailbox_id)
    secret_note = {"replaced": "; secret replaced", "dropped": "; stored secret dropped (not needed)"}.get(
        change.secret, ""
    )
    if change.state == PAUSED:
        after = f"paused: it reads the new source after crm-sync mailbox resume {name}"
    else:
        after = "the next sync reads it from the start (nothing is doubled)"
    console.print(f"mailbox {name}: source {change.new} (was {change.old}){secret_note}; {after}")
    if change.orphaned.cancelled:
        cancelled = plural(change.orphaned.cancelled, "future meeting or call", "future meetings or calls")
        console.print(f"mailbox {name}: {cancelled} only the old source carried cancelled (until the new one has it)")
    if queued:
        console.print(f"mailbox {name}: sync queued")


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
        console.print(f"mailbox {name}: {action}d" if action.endswith("e") else f"mailbox {name}: {action}ed")
        if queued:
            console.print(f"mailbox {name}: sync queued")

    command.__doc__ = doc
    mailbox_app.command(action)(command)


@mailbox_app.command("remove", short_help="Remove a mailbox and its sync state; logged activities and documents stay.")
def remove(name: str = typer.Argument(..., help="The mailbox name.")) -> None:
    """Remove a mailbox and its sync state; logged activities and documents stay. Meetings and calls ahead that
    only this mailbox carried are cancelled (a copy that comes back revives them)."""
    with open_app() as app:
        with transaction(app.sessions) as session:
            mailbox_id = session.scalar(select(Mailbox.id).where(Mailbox.name == name))
            orphaned = mailboxes.remove_mailbox(session, name)
        # … and a removed mailbox's dead letters go with it (they could only do nothing).
        dropped = drop_dead_letters(app.settings, mailbox_id) if mailbox_id else None
    console.print(f"mailbox {name}: removed")
    if orphaned.cancelled:
        cancelled = plural(orphaned.cancelled, "future meeting or call", "future meetings or calls")
        console.print(f"mailbox {name}: {cancelled} that only it carried cancelled")
    if orphaned.ended_planned:
        ended = plural(orphaned.ended_planned, "ended meeting or call", "ended meetings or calls")
        console.print(f"mailbox {name}: {ended} that only it carried left planned (complete or cancel by hand)")
    if dropped:
        console.print(f"mailbox {name}: {dropped} dead-lettered messages dropped")


_simple("pause", "Stop syncing a mailbox until resumed.")
_simple("resume", "Resume a paused or failed mailbox.")
_simple("resync", "Read the whole mailbox again on the next sync (no duplicates are created).")

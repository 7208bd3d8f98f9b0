"""The `crm-sync` console command (SPEC §5).

Exit codes: 0 success; 1 failure, with a one-line reason on standard error; 2 usage error.
"""

from __future__ import annotations

import logging
import sys
import traceback

import typer
from sqlalchemy.exc import SQLAlchemyError

from sync_service import __version__
from sync_service.cli.accounts import account_app
from sync_service.cli.blobs import blobs_app
from sync_service.cli.contacts import contact_app
from sync_service.cli.dashboard import dashboard_app
from sync_service.cli.demo import demo_command
from sync_service.cli.imports import import_app
from sync_service.cli.mailbox import mailbox_app
from sync_service.cli.never_log import never_log_app
from sync_service.cli.purge import purge_app
from sync_service.cli.quarantine import quarantine_app
from sync_service.cli.reporting import export_command, status_command
from sync_service.cli.review import activity_app, match_app, review_app
from sync_service.cli.sales import (
    activity_cancel_command,
    activity_complete_command,
    lead_app,
    opportunity_app,
    process_app,
)
from sync_service.cli.setup import init_command, secret_key_app
from sync_service.cli.sync import sync_command
from sync_service.cli.terminal import terminal_safe
from sync_service.cli.watch import watch_command
from sync_service.cli.workers import queue_app, scheduler_command, worker_command
from sync_service.errors import CrmSyncError

app = typer.Typer(
    name="crm-sync",
    help="Sync sales reps' mailboxes and calendars into the CRM. Configuration comes from CRM_* environment "
    "variables (or an .env file): CRM_DATABASE_URL, CRM_BROKER_URL, CRM_DATA_DIR, CRM_INTERNAL_DOMAINS, "
    "CRM_AUTO_CREATE, CRM_SECRET_KEY.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("init")(init_command)
app.command("demo")(demo_command)
app.add_typer(import_app, name="import")
app.add_typer(mailbox_app, name="mailbox")
app.command("sync")(sync_command)
app.command("status")(status_command)
app.command("export")(export_command)
app.add_typer(secret_key_app, name="secret-key")  # alone: prints a new key; `rotate`: re-encrypts
app.add_typer(review_app, name="review")
app.add_typer(activity_app, name="activity")  # `link|unlink` here; the process engine may add commands to it
app.add_typer(match_app, name="match")
app.add_typer(never_log_app, name="never-log")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(process_app, name="process")
app.add_typer(opportunity_app, name="opportunity")
app.add_typer(lead_app, name="lead")
app.add_typer(account_app, name="account")
app.add_typer(contact_app, name="contact")
activity_app.command("complete")(activity_complete_command)
activity_app.command("cancel")(activity_cancel_command)
app.command("worker")(worker_command)
app.command("scheduler")(scheduler_command)
app.command("watch")(watch_command)
app.add_typer(queue_app, name="queue")
app.add_typer(dashboard_app, name="dashboard")
app.add_typer(blobs_app, name="blobs")
app.add_typer(purge_app, name="purge")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"crm-sync {__version__}")
        raise typer.Exit()


# The long-running parts log warnings (JSON for the workers); a one-shot command reports its outcome itself
# (a summary on standard output, a one-line reason on standard error), and logs only with --verbose.
LONG_RUNNING = frozenset({"worker", "scheduler", "watch", "dashboard"})


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to standard error."),
) -> None:
    quiet = logging.WARNING if ctx.invoked_subcommand in LONG_RUNNING else logging.CRITICAL
    logging.basicConfig(level=logging.INFO if verbose else quiet, format="%(levelname)s %(name)s: %(message)s")


def _fail(message: str) -> None:
    first = terminal_safe(" ".join(message.strip().splitlines()[:1])) or "failed"
    print(f"crm-sync: error: {first}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    """Typer's standalone mode handles usage errors (exit 2); our own failures become one line and exit 1."""
    try:
        app(prog_name="crm-sync")
    except CrmSyncError as error:
        _fail(str(error))
    except SQLAlchemyError as error:
        _fail(f"database error: {error.__class__.__name__}: {str(error).splitlines()[0]}")
    except OSError as error:
        _fail(str(error))
    except KeyboardInterrupt:
        _fail("interrupted")
    except Exception as error:  # a fault nobody foresaw: still one line (with --verbose, the traceback before it)
        if logging.getLogger().isEnabledFor(logging.INFO):
            traceback.print_exc()
        _fail(f"unexpected {type(error).__name__}: {error} (run with --verbose for the traceback)")


if __name__ == "__main__":
    main()

"""`crm-sync dashboard [--host H --port P]` and `crm-sync dashboard hash-password` (see docs/dashboard.md)."""

from __future__ import annotations

import os
import sys
from getpass import getpass

import typer

from sync_service.cli.common import err_console, open_app, settings
from sync_service.dashboard.auth import hash_password
from sync_service.dashboard.config import load_dashboard_config
from sync_service.errors import ConfigError

dashboard_app = typer.Typer(
    help="The admin web page: mailbox health, queues, quarantine, review, /metrics. "
    "Needs CRM_ADMIN_PASSWORD_HASH or CRM_ADMIN_TOKEN.",
    invoke_without_command=True,
)


@dashboard_app.callback(invoke_without_command=True)
def dashboard_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (put a TLS proxy in front)."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on."),
) -> None:
    """Serve the dashboard with uvicorn until stopped (Ctrl-C / SIGTERM)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from sync_service.dashboard.app import create_app

    current = settings()  # also reads an .env file, before the dashboard's variables are read
    config = load_dashboard_config()
    if not config.has_login:
        raise ConfigError(
            "the dashboard needs a login: set CRM_ADMIN_PASSWORD_HASH (crm-sync dashboard hash-password) "
            "or CRM_ADMIN_TOKEN"
        )
    with open_app(app_settings=current) as app:
        api = create_app(app, config)
        err_console.print(f"crm-sync dashboard on http://{host}:{port}/ (Ctrl-C stops it)")
        uvicorn.run(
            api,
            host=host,
            port=port,
            proxy_headers=True,  # X-Forwarded-Proto from a trusted TLS proxy makes cookies Secure
            forwarded_allow_ips=os.environ.get("CRM_DASHBOARD_TRUSTED_PROXIES", "127.0.0.1"),
            server_header=False,
            log_level="info",
        )


@dashboard_app.command("hash-password")
def hash_password_command() -> None:
    """Print a salted scrypt hash of a password for CRM_ADMIN_PASSWORD_HASH (asked for on a terminal, else
    read from the first line of standard input)."""
    if sys.stdin.isatty():
        password = getpass("Admin password: ")
        if getpass("Again: ") != password:
            raise ConfigError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    typer.echo(hash_password(password))

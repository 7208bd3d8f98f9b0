"""Shared CLI plumbing: settings, the app, the console, the 'database initialised?' check."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import URL

from crm_store.schema_version import schema_problem
from sync_service.bootstrap import App, bootstrap
from sync_service.cli.terminal import SafeConsole
from sync_service.config import Settings, load_env_file, load_settings
from sync_service.errors import ConfigError

# What the CLI prints of mail, calendars and imports cannot act on the terminal (``terminal``).
console = SafeConsole(stderr=False, highlight=False, soft_wrap=True)
err_console = SafeConsole(stderr=True, highlight=False)


def print_table(table: RenderableType) -> None:
    """A table on standard output: fitted to a terminal, or whole (no cell cut short) when piped or captured."""
    if console.is_terminal:
        console.print(table)
    else:
        SafeConsole(highlight=False, width=100_000).print(table)


def progress_bars() -> Progress:
    """Progress bars on standard error for long work (``sync``, ``quarantine retry``)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        auto_refresh=False,  # no refresh thread: ``run_once`` forks its fetch process only from a lone thread
        disable=not err_console.is_terminal,  # piped or captured: no bars, and not even a blank line on stderr
    )


def settings() -> Settings:
    load_env_file()  # an .env file in the working directory (or a parent), if any; the environment wins
    return load_settings()


@contextmanager
def open_app(require_schema: bool = True, app_settings: Settings | None = None) -> Iterator[App]:
    app = bootstrap(app_settings or settings())
    try:
        if require_schema and (missing := _missing_sqlite_file(app.engine.url)) is not None:
            # connecting would create an empty database file: say so without leaving one behind
            raise ConfigError(f"no database at {missing}; run: crm-sync init")
        if require_schema and (problem := schema_problem(app.engine)) is not None:
            raise ConfigError(problem)
        yield app
    finally:
        app.close()


def _missing_sqlite_file(url: URL) -> str | None:
    """The path of a SQLite database file that does not exist (None for other databases and in-memory ones)."""
    path = url.database
    if url.get_backend_name() != "sqlite" or not path or path == ":memory:" or path.startswith("file:"):
        return None
    return None if Path(path).exists() else path


def is_terminal() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()

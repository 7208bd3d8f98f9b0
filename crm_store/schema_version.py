"""Is the database at the schema this version of the code reads and writes? Checked by every command that uses
it (``sync_service.cli.common.open_app``) and by the workers, in one query: this module imports no Alembic (its
import alone costs a third of a second) and loads no migration."""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import OperationalError, ProgrammingError

# The newest migration. ``tests/store/test_migrations.py`` keeps it equal to the head of ``migrations/versions``.
SCHEMA_REVISION = "0018"


def schema_problem(engine: Engine) -> str | None:
    """Why this version cannot use the database, in one line (``None``: it is at ``SCHEMA_REVISION``).

    A database not upgraded since crm-sync was (items would be quarantined one by one with "no such column"),
    or one a newer crm-sync upgraded."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return "the database is not initialised; run: crm-sync init"
        revisions = set(connection.scalars(text("SELECT version_num FROM alembic_version")))
    if revisions == {SCHEMA_REVISION}:
        return None
    found = ", ".join(sorted(revisions)) or "none"
    if _newer(revisions):
        return (
            f"the database is at schema revision {found}, newer than this crm-sync knows ({SCHEMA_REVISION}): "
            "upgrade crm-sync"
        )
    return f"the database is at schema revision {found}, this crm-sync needs {SCHEMA_REVISION}; run: crm-sync init"


def _newer(revisions: set[str]) -> bool:
    return bool(revisions) and all(revision > SCHEMA_REVISION for revision in revisions)  # ids sort in order


def newer_schema(engine: Engine) -> str | None:
    """The one-line refusal when a newer crm-sync upgraded the database (``crm-sync init`` cannot go back:
    restore the backup taken before that upgrade), else None."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        revisions = set(connection.scalars(text("SELECT version_num FROM alembic_version")))
    if not _newer(revisions):
        return None
    return (
        f"the database is at schema revision {', '.join(sorted(revisions))}, newer than this crm-sync knows "
        f"({SCHEMA_REVISION}): init cannot go back; run the newer crm-sync, or restore the backup taken before "
        "the upgrade"
    )


_SQLITE_SCHEMA_ERRORS = ("no such column", "no such table", "has no column named")


def schema_mismatch(error: BaseException) -> bool:
    """Is ``error`` the database refusing the code's statements (a column or table missing: the schema is not
    the one the code was written for)? Such an error is nobody's item: the work stops and is retried, instead
    of each item being quarantined in turn."""
    if isinstance(error, ProgrammingError):  # PostgreSQL: undefined column / table (and SQL the server rejects)
        return True
    return isinstance(error, OperationalError) and any(text in str(error.orig) for text in _SQLITE_SCHEMA_ERRORS)

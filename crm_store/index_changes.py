"""Has the CRM data the candidate index is read from changed since a given moment?

A processing run matches against an index of the whole CRM (``matching.load.build_index``): about a second
for 100,000 contacts. A process keeps its last index between runs (``pipeline.index_cache``) and reuses it
only when this module says that nothing it was read from has changed since. The database records the changes
itself, with triggers on those tables (installed by migration 0008), so every writer counts: the workers, the
CLI's imports, the dashboard, an admin's SQL.

- SQLite: a row-level trigger per table and operation increments the one row of ``crm_index_version``.
  SQLite has one writer at a time, so the counter is exact and adds no waiting.
- PostgreSQL: a statement-level trigger records the writing transaction's id in ``crm_index_changes`` (one row
  per transaction; two transactions never write the same row, so concurrent writers never wait for each
  other). A reader keeps the snapshot it read its index in and asks whether a transaction that this snapshot
  did not see has committed since (``pg_visible_in_snapshot``, PostgreSQL 13 or newer).

A token is taken *before* the index is read: a change committed in between is then in the index and also
counted as new next time — one needless rebuild, never a stale index.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

# Each table the index is read from → the columns it reads (an UPDATE of other columns changes nothing in
# it). Deleting an account or a lead deletes its domains or addresses by the foreign keys' cascades, which
# fire these tables' triggers too (tested).
WATCHED: dict[str, tuple[str, ...]] = {
    "users": ("id", "email"),
    "never_log": ("value",),
    "account_domains": ("domain", "account_id"),
    "contacts": ("id", "account_id"),
    "contact_emails": ("email", "contact_id"),
    "contact_phones": ("e164", "contact_id"),
    "lead_emails": ("email", "lead_id"),
    "lead_phones": ("e164", "lead_id"),
    "opportunities": ("id", "account_id", "status"),
    "opportunity_participants": ("contact_id", "opportunity_id"),
}

VERSION_TABLE = "crm_index_version"  # SQLite
CHANGES_TABLE = "crm_index_changes"  # PostgreSQL
TRIGGER_PREFIX = "crm_index_"
PG_FUNCTION = "crm_index_changed"
DONE_SETTING = "crm_sync.index_change_recorded"  # PostgreSQL: this transaction's row is written

Token = int | str  # SQLite: the version counter; PostgreSQL: a snapshot, as ``pg_current_snapshot()::text``


def _operations(columns: tuple[str, ...]) -> list[tuple[str, str]]:
    """(name, SQL event) of the row-level triggers a table needs on SQLite."""
    return [("insert", "INSERT"), ("delete", "DELETE"), ("update", f"UPDATE OF {', '.join(columns)}")]


def install_sql(dialect: str) -> list[str]:
    """The statements that create the change record and its triggers (migration 0008)."""
    if dialect == "postgresql":
        statements = [
            f"CREATE TABLE {CHANGES_TABLE} (xid xid8 PRIMARY KEY,"
            " changed_at timestamptz NOT NULL DEFAULT clock_timestamp())",
            f"CREATE INDEX ix_{CHANGES_TABLE}_changed_at ON {CHANGES_TABLE} (changed_at)",
            # Once per transaction: a setting local to the transaction (undone with a savepoint rolled back,
            # as the row is) says the row is written, so a bulk load's thousands of statements do not probe
            # the primary key each.
            f"CREATE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$"
            " DECLARE current xid8 := pg_current_xact_id(); BEGIN"
            f" IF current_setting('{DONE_SETTING}', true) IS DISTINCT FROM current::text THEN"
            f" INSERT INTO {CHANGES_TABLE} (xid) VALUES (current) ON CONFLICT DO NOTHING;"
            f" PERFORM set_config('{DONE_SETTING}', current::text, true);"
            " END IF; RETURN NULL; END $$",
        ]
        for table, columns in WATCHED.items():
            statements.append(
                f"CREATE TRIGGER {TRIGGER_PREFIX}{table}"
                f" AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF {', '.join(columns)} ON {table}"
                f" FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()"
            )
        return statements
    statements = [
        f"CREATE TABLE {VERSION_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
        f"INSERT INTO {VERSION_TABLE} (id, version) VALUES (1, 0)",
    ]
    for table, columns in WATCHED.items():
        for name, event in _operations(columns):
            statements.append(
                f"CREATE TRIGGER {TRIGGER_PREFIX}{table}_{name} AFTER {event} ON {table}"
                f" BEGIN UPDATE {VERSION_TABLE} SET version = version + 1 WHERE id = 1; END"
            )
    return statements


def uninstall_sql(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {TRIGGER_PREFIX}{table} ON {table}" for table in WATCHED] + [
            f"DROP FUNCTION IF EXISTS {PG_FUNCTION}()",
            f"DROP TABLE IF EXISTS {CHANGES_TABLE}",
        ]
    return [
        f"DROP TRIGGER IF EXISTS {TRIGGER_PREFIX}{table}_{name}"
        for table, columns in WATCHED.items()
        for name, _event in _operations(columns)
    ] + [f"DROP TABLE IF EXISTS {VERSION_TABLE}"]


def _expected_triggers(dialect: str) -> int:
    if dialect == "postgresql":
        return len(WATCHED)
    return sum(len(_operations(columns)) for columns in WATCHED.values())


def installed(connection: Connection) -> bool:
    """Are the change record and all its triggers there? (A database made without the migrations — say by
    ``Base.metadata.create_all`` — has none: its index is then built for every run, as before.)"""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        found = connection.scalar(
            text(
                "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                " WHERE t.tgname LIKE :prefix AND c.relnamespace = to_regnamespace(current_schema())::oid"
                " AND to_regclass(:changes) IS NOT NULL"
            ),
            {"prefix": TRIGGER_PREFIX + "%", "changes": CHANGES_TABLE},
        )
    elif dialect == "sqlite":
        tables = connection.scalar(
            text("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": VERSION_TABLE}
        )
        found = (
            connection.scalar(
                text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE :prefix"),
                {"prefix": TRIGGER_PREFIX + "%"},
            )
            if tables
            else 0
        )
    else:
        return False
    return int(found or 0) == _expected_triggers(dialect)


def token(connection: Connection) -> Token | None:
    """Now, as a token to compare later ones with (``unchanged_since``); ``None``: cannot tell."""
    if connection.dialect.name == "postgresql":
        return str(connection.scalar(text("SELECT pg_current_snapshot()::text")))
    version = connection.scalar(text(f"SELECT version FROM {VERSION_TABLE} WHERE id = 1"))
    return int(version) if version is not None else None


def unchanged_since(connection: Connection, then: Token) -> tuple[bool, Token | None]:
    """Has nothing the index is read from changed since ``then``? And the token of now.

    On PostgreSQL, "changed" is: a transaction that wrote to a watched table is visible now and was not in the
    snapshot ``then``. Only transactions from that snapshot's oldest running one on can be such, so the
    lookup is a range of the primary key, however long the record has grown."""
    if connection.dialect.name == "postgresql":
        row = connection.execute(
            text(
                f"SELECT EXISTS (SELECT 1 FROM {CHANGES_TABLE}"
                " WHERE xid >= pg_snapshot_xmin(CAST(:then AS pg_snapshot))"
                " AND NOT pg_visible_in_snapshot(xid, CAST(:then AS pg_snapshot))), pg_current_snapshot()::text"
            ),
            {"then": then},
        ).one()
        return not row[0], str(row[1])
    now = token(connection)
    return now is not None and now == then, now


def prune(connection: Connection, older_than_seconds: float) -> int:
    """Forget the PostgreSQL record's transactions that wrote longer ago than ``older_than_seconds`` (only
    snapshots older than that could still need them; ``pipeline.index_cache`` keeps none that long). Rows
    another process is pruning are skipped. Returns how many rows went; SQLite has nothing to prune."""
    if connection.dialect.name != "postgresql":
        return 0
    result = connection.execute(
        text(
            f"DELETE FROM {CHANGES_TABLE} WHERE xid IN (SELECT xid FROM {CHANGES_TABLE}"
            " WHERE changed_at < clock_timestamp() - make_interval(secs => :age) FOR UPDATE SKIP LOCKED)"
        ),
        {"age": older_than_seconds},
    )
    return int(result.rowcount or 0)

"""Has the CRM data the candidate index is read from changed since a given moment?

A processing run matches against an index of the whole CRM (``matching.load.build_index``): about a second
for 100,000 contacts. A process keeps its last index between runs (``pipeline.index_cache``) and reuses it
only when this module says that nothing it was read from has changed since. The database records the changes
itself, with triggers on those tables (installed by migration 0008), so every writer counts: the workers, the
CLI's imports, the dashboard, an admin's SQL.

- SQLite: a row-level trigger per table and kind of write (insert, update of a column the index reads,
  delete) increments that pair's counter in ``crm_index_version``. SQLite has one writer at a time, so the
  counters are exact and add no waiting.
- PostgreSQL: a statement-level trigger records the writing transaction's id, with the table and kind, in
  ``crm_index_changes`` (one row per transaction, table and kind; two transactions never write the same row,
  so concurrent writers never wait for each other). A reader keeps the snapshot it read its index in and asks
  which kinds of write transactions that this snapshot did not see have committed since
  (``pg_visible_in_snapshot``, PostgreSQL 13 or newer).

When the only writes since are what processing runs make — new contacts, their addresses, new leads'
addresses (``PATCHABLE``) — the kept index takes the rows added since (``new_rows``) instead of reading the
whole CRM again.

A token is taken *before* the index is read: a change committed in between is then in the index and also
counted as new next time — one needless rebuild, never a stale index.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

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

# What processing runs add (new contacts with their addresses, new leads' addresses): when these inserts are
# all that changed, the kept index takes the new rows (``new_rows``) instead of reading everything again.
PATCHABLE = frozenset({("contacts", "insert"), ("contact_emails", "insert"), ("lead_emails", "insert")})
_NEW_ROWS = {  # table → the columns build_index reads of it, in the order it reads them
    "contacts": ("id", "account_id"),
    "contact_emails": ("email", "contact_id"),
    "lead_emails": ("email", "lead_id"),
}

VERSION_TABLE = "crm_index_version"  # SQLite: a counter per table and kind of write
CHANGES_TABLE = "crm_index_changes"  # PostgreSQL: the writing transactions, per table and kind of write
TRIGGER_PREFIX = "crm_index_"
PG_FUNCTION = "crm_index_changed"
SETTING_PREFIX = "crm_sync.index_"  # PostgreSQL: this transaction's row for a table and kind is written

Change = tuple[str, str]  # (table, "insert" | "update" | "delete" | "truncate")


@dataclass(frozen=True)
class Token:
    """A moment, to compare later ones with (``changes_since``) and to find the rows added since (``new_rows``)."""

    snapshot: str | None = None  # PostgreSQL: ``pg_current_snapshot()::text``
    counters: tuple[tuple[str, int], ...] = ()  # SQLite: each "table.kind" counter
    max_ids: tuple[tuple[str, int], ...] = ()  # SQLite: the largest id of each table of ``_NEW_ROWS``


def _operations(columns: tuple[str, ...]) -> list[tuple[str, str]]:
    """(kind, SQL event) of the row-level triggers a table needs on SQLite."""
    return [("insert", "INSERT"), ("delete", "DELETE"), ("update", f"UPDATE OF {', '.join(columns)}")]


def install_sql(dialect: str) -> list[str]:
    """The statements that create the change record and its triggers (migration 0008)."""
    if dialect == "postgresql":
        statements = [
            f"CREATE TABLE {CHANGES_TABLE} (xid xid8 NOT NULL, tbl text NOT NULL, op text NOT NULL,"
            " changed_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (xid, tbl, op))",
            f"CREATE INDEX ix_{CHANGES_TABLE}_changed_at ON {CHANGES_TABLE} (changed_at)",
            # Once per transaction, table and kind of write: a setting local to the transaction (undone with a
            # savepoint rolled back, as the row is) says the row is written, so a bulk load's thousands of
            # statements do not probe the primary key each. SECURITY DEFINER: a role that may write contacts
            # but was granted nothing on the record (an admin's, a reporting tool's) still writes them.
            f"CREATE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql"
            " SECURITY DEFINER SET search_path FROM CURRENT AS $$"
            " DECLARE tx xid8 := pg_current_xact_id();"
            f" setting text := '{SETTING_PREFIX}' || TG_TABLE_NAME || '_' || lower(TG_OP); BEGIN"
            " IF current_setting(setting, true) IS DISTINCT FROM tx::text THEN"
            f" INSERT INTO {CHANGES_TABLE} (xid, tbl, op) VALUES (tx, TG_TABLE_NAME, lower(TG_OP))"
            " ON CONFLICT DO NOTHING;"
            " PERFORM set_config(setting, tx::text, true);"
            " END IF; RETURN NULL; END $$",
        ]
        for table, columns in WATCHED.items():
            statements.append(
                f"CREATE TRIGGER {TRIGGER_PREFIX}{table}"
                f" AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF {', '.join(columns)} ON {table}"
                f" FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()"
            )
        return statements
    statements = [f"CREATE TABLE {VERSION_TABLE} (name TEXT PRIMARY KEY, version INTEGER NOT NULL)"]
    for table, columns in WATCHED.items():
        for kind, event in _operations(columns):
            statements.append(f"INSERT INTO {VERSION_TABLE} (name, version) VALUES ('{table}.{kind}', 0)")
            statements.append(
                f"CREATE TRIGGER {TRIGGER_PREFIX}{table}_{kind} AFTER {event} ON {table} BEGIN"
                f" UPDATE {VERSION_TABLE} SET version = version + 1 WHERE name = '{table}.{kind}'; END"
            )
    return statements


def uninstall_sql(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {TRIGGER_PREFIX}{table} ON {table}" for table in WATCHED] + [
            f"DROP FUNCTION IF EXISTS {PG_FUNCTION}()",
            f"DROP TABLE IF EXISTS {CHANGES_TABLE}",
        ]
    return [
        f"DROP TRIGGER IF EXISTS {TRIGGER_PREFIX}{table}_{kind}"
        for table, columns in WATCHED.items()
        for kind, _event in _operations(columns)
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


def _sqlite_now(connection: Connection) -> Token | None:
    """The counters, then the largest ids (in that order: a row committed in between is then both counted as
    new next time and found by its id now, never neither)."""
    counters = tuple(sorted((n, v) for n, v in connection.execute(text(f"SELECT name, version FROM {VERSION_TABLE}"))))
    if not counters:
        return None
    biggest = " UNION ALL ".join(f"SELECT '{t}', coalesce(max(id), 0) FROM {t}" for t in _NEW_ROWS)
    return Token(counters=counters, max_ids=tuple((t, m) for t, m in connection.execute(text(biggest))))


def token(connection: Connection) -> Token | None:
    """Now, as a token to compare later ones with (``changes_since``); ``None``: cannot tell."""
    if connection.dialect.name == "postgresql":
        return Token(snapshot=str(connection.scalar(text("SELECT pg_current_snapshot()::text"))))
    return _sqlite_now(connection)


def changes_since(connection: Connection, then: Token) -> tuple[frozenset[Change], Token | None]:
    """The kinds of write to the tables the index reads since ``then`` (none: nothing changed), and the token
    of now.

    On PostgreSQL a write is since ``then`` when its transaction is visible now and was not in the snapshot
    ``then``. Only transactions from that snapshot's oldest running one on can be such, so the lookup is a
    range of the primary key, however long the record has grown. Now's snapshot is the statement's own: a
    transaction that commits after it is new next time."""
    if connection.dialect.name == "postgresql":
        snapshot, kinds = connection.execute(
            text(
                f"SELECT pg_current_snapshot()::text, (SELECT array_agg(DISTINCT tbl || '.' || op) FROM {CHANGES_TABLE}"
                " WHERE xid >= pg_snapshot_xmin(CAST(:then AS pg_snapshot))"
                " AND NOT pg_visible_in_snapshot(xid, CAST(:then AS pg_snapshot)))"
            ),
            {"then": then.snapshot},
        ).one()
        found = frozenset(_change(kind) for kind in kinds or ())
        return found, Token(snapshot=str(snapshot))
    now = _sqlite_now(connection)
    if now is None:
        return frozenset(), None
    before = dict(then.counters)
    return frozenset(_change(name) for name, count in now.counters if before.get(name) != count), now


def _change(name: str) -> Change:
    table, _dot, kind = name.partition(".")
    return table, kind


def new_rows(connection: Connection, then: Token, tables: Collection[str]) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of ``tables`` (of ``PATCHABLE``) that may have been added since ``then``, with the columns
    the index reads: every row written since, and maybe some it already had (adding those changes nothing).

    SQLite has one writer at a time, so a row added since has a larger id than any there was then. On
    PostgreSQL ids are taken before commit, in another order: a row is instead found by the transaction that
    wrote it (its ``xmin``), from the oldest one running at ``then`` on — a scan of the table."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    for table in tables:
        columns = ", ".join(_NEW_ROWS[table])
        if connection.dialect.name == "postgresql":
            query = text(
                f"SELECT {columns} FROM {table} WHERE age(xmin) <= age(CAST(CAST("
                "pg_snapshot_xmin(CAST(:then AS pg_snapshot))::text::bigint % 4294967296 AS text) AS xid))"
            )
            rows[table] = [tuple(row) for row in connection.execute(query, {"then": then.snapshot})]
        else:
            query = text(f"SELECT {columns} FROM {table} WHERE id > :after ORDER BY id")
            rows[table] = [tuple(row) for row in connection.execute(query, {"after": dict(then.max_ids).get(table, 0)})]
    return rows


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

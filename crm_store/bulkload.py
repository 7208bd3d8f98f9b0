"""Many new rows into one table at once: ``COPY … FROM STDIN`` on PostgreSQL, one multi-row INSERT elsewhere.

A processing batch writes hundreds of rows per table (items, activities, their links and documents). As
INSERT statements PostgreSQL parses, plans and executes each batch of rows while the client waits, and the
client renders every placeholder; ``COPY`` streams the rows in the table's text format and the server only
stores them (constraints, indexes and foreign-key checks still apply). New ids are taken from the table's
sequence first (``allocate_ids``) so that the rows that need them back can be copied too.

Rows are plain column values, every row of a call with the same keys, as for a Core ``insert()``; columns a
row leaves out get the column's Python-side default, as SQLAlchemy would fill them in. A failure is raised as
SQLAlchemy's exception for it (``IntegrityError`` for a unique key …), as an INSERT's would be.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Column, Table, insert, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

Row = dict[str, Any]


def insert_rows(session: Session, model: type[Any], rows: Sequence[Row]) -> None:
    """Insert ``rows`` into the table of ``model`` (no ids back)."""
    if not rows:
        return
    table: Table = model.__table__
    if _copies(session):
        _copy(session, table, rows)
    else:
        session.execute(insert(table), list(rows))


def insert_rows_returning_ids(session: Session, model: type[Any], rows: Sequence[Row]) -> list[int]:
    """Insert ``rows`` into the table of ``model`` and return their new ids in the same order.

    PostgreSQL: the ids are taken from the table's sequence, then the rows are copied with them. SQLite cannot
    say which returned id belongs to which row of a multi-row INSERT, so the first row is inserted alone, which
    takes SQLite's single write lock and allocates the next id N, and the others get N+1, N+2 … explicitly:
    with the lock held no other writer can take them, and both of SQLite's id schemes (max(rowid)+1 and the
    AUTOINCREMENT sequence) allocate above N next."""
    if not rows:
        return []
    table: Table = model.__table__
    name = session.get_bind().dialect.name
    if name == "postgresql":
        ids = allocate_ids(session, table, len(rows))
        insert_rows(session, model, [{**row, "id": new_id} for row, new_id in zip(rows, ids, strict=True)])
        return ids
    if name != "sqlite":
        return list(session.scalars(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows))
    first = int(session.scalars(insert(table).returning(table.c.id), rows[0]).one())
    ids = list(range(first, first + len(rows)))
    insert_rows(session, model, [{**row, "id": new_id} for row, new_id in zip(rows[1:], ids[1:], strict=True)])
    return ids


def allocate_ids(session: Session, table: Table, count: int) -> list[int]:
    """``count`` new ids from the sequence of ``table``'s ``id`` column (PostgreSQL), ascending: one query.
    Ids taken and not used (a rolled-back batch) are gaps, as with any INSERT that fails."""
    if count <= 0:
        return []
    result = session.execute(
        text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)"),
        {"table": table.name, "count": count},
    )
    return sorted(int(value) for value in result.scalars())


def _copies(session: Session) -> bool:
    bind = session.get_bind()
    return bind.dialect.name == "postgresql" and bind.dialect.driver == "psycopg"


def _copy(session: Session, table: Table, rows: Sequence[Row]) -> None:
    connection = session.connection()
    dialect = connection.dialect
    given = set(rows[0])
    columns = [c for c in table.columns if c.name in given or _python_default(c) is not None]
    unknown = given - {c.name for c in columns}
    if unknown:
        raise ValueError(f"no such column in {table.name}: {', '.join(sorted(unknown))}")
    makers = [_value_of(column, column.name in given, dialect) for column in columns]
    quote = dialect.identifier_preparer.quote
    statement = f"COPY {quote(table.name)} ({', '.join(quote(c.name) for c in columns)}) FROM STDIN"
    driver_connection: Any = connection.connection.driver_connection
    try:
        with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([make(row) for make in makers])
    except Exception as error:
        import psycopg

        if isinstance(error, psycopg.Error):
            raise DBAPIError.instance(statement, None, error, psycopg.Error) from error
        raise


def _python_default(column: Column[Any]) -> Any:
    default = column.default
    if default is None:
        return None
    if getattr(default, "is_scalar", False) or getattr(default, "is_callable", False):
        return default
    raise ValueError(f"{column.table.name}.{column.name}: a SQL default cannot be copied")


def _value_of(column: Column[Any], given: bool, dialect: Dialect) -> Callable[[Row], Any]:
    """How a row's value for ``column`` is made: the row's own value or the column's default, then bound as
    SQLAlchemy binds it for this dialect (UTC datetimes, JSON …)."""
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    name = column.name
    if given:
        if process is None:
            return lambda row: row[name]
        return lambda row: process(row[name])
    default = _python_default(column)
    if default.is_callable:
        make = default.arg
        if process is None:
            return lambda row: make(None)
        return lambda row: process(make(None))
    value = default.arg if process is None else process(default.arg)
    return lambda row: value

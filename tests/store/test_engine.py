"""The engine ``make_engine`` builds: on PostgreSQL, statements go to psycopg as ``$n`` queries, unparsed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, func, insert, select, text
from sqlalchemy.orm import Session

from crm_store.db import lock_key, lock_name, lock_names, make_engine


@contextmanager
def _probe(database_url: str, name: str) -> Iterator[tuple[Engine, Table]]:
    """An engine from ``make_engine`` and a table (id, s) made for the test, dropped after it."""
    engine = make_engine(database_url)
    table = Table(name, MetaData(), Column("id", Integer, primary_key=True), Column("s", String(20)))
    try:
        table.create(engine)
        yield engine, table
    finally:
        table.drop(engine, checkfirst=True)
        engine.dispose()


def test_statements_and_percent_signs_survive_the_engine(database_url: str) -> None:
    with _probe(database_url, "engine_probe") as (engine, table), engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            assert engine.dialect.paramstyle == "numeric_dollar"
            driver = conn.connection.driver_connection
            assert driver is not None and isinstance(driver.cursor(), psycopg.RawCursor)
        rows = [{"s": f"{i}%_'x"} for i in range(600)]  # a multi-row INSERT … RETURNING of 600 rows
        ids = conn.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars().all()
        assert len(ids) == 600 and ids == sorted(ids)
        assert conn.execute(select(table.c.s).where(table.c.id == ids[7])).scalar() == "7%_'x"
        assert conn.execute(text("SELECT count(*) FROM engine_probe WHERE s LIKE '1%'")).scalar() == 111
        assert conn.execute(select(func.count()).where(table.c.s.startswith("5%", autoescape=True))).scalar() == 1


def test_one_of_selects_the_same_rows_as_in_and_is_one_statement_on_postgresql(database_url: str) -> None:
    from crm_store.db import one_of

    with _probe(database_url, "one_of_probe") as (engine, table):
        with engine.begin() as conn:
            conn.execute(insert(table), [{"s": f"{i}%_'x"} for i in range(50)])
            dialect = engine.dialect.name
            for wanted in ([], ["7%_'x"], [f"{i}%_'x" for i in range(0, 50, 3)] + ["absent"]):
                found = conn.execute(select(table.c.s).where(one_of(table.c.s, wanted, dialect))).scalars().all()
                assert sorted(found) == sorted(w for w in wanted if w != "absent")
            ids = conn.execute(select(table.c.id).where(one_of(table.c.id, range(1, 11), dialect))).scalars().all()
            assert sorted(ids) == list(range(1, 11))
        # PostgreSQL: one array parameter, the same statement text for any number of values (prepared once).
        text_of = str(select(table.c.id).where(one_of(table.c.id, range(9), dialect)).compile(engine))
        assert ("= ANY" in text_of) == (dialect == "postgresql")


def test_lock_names_holds_every_name_until_the_transaction_ends(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with Session(engine) as holder, Session(engine) as other:
            holder.begin()
            lock_names(holder, ["contact-email:b@x.example", "contact-email:a@x.example"])
            lock_name(holder, "contact-email:c@x.example")
            if engine.dialect.name != "postgresql":  # SQLite serialises writers itself: nothing is locked
                return
            try_lock = text("SELECT pg_try_advisory_xact_lock(:key)")
            for name, held in (("a", True), ("b", True), ("c", True), ("d", False)):
                with other.begin():
                    key = lock_key(f"contact-email:{name}@x.example")
                    assert other.execute(try_lock, {"key": key}).scalar() is not held, name
            holder.rollback()
            with other.begin():
                assert other.execute(try_lock, {"key": lock_key("contact-email:a@x.example")}).scalar() is True
    finally:
        engine.dispose()

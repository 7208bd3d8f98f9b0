"""The engine ``make_engine`` builds: on PostgreSQL, statements go to psycopg as ``$n`` queries, unparsed."""

from __future__ import annotations

import psycopg
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text

from crm_store.db import make_engine


def test_statements_and_percent_signs_survive_the_engine(database_url: str) -> None:
    engine = make_engine(database_url)
    table = Table("engine_probe", MetaData(), Column("id", Integer, primary_key=True), Column("s", String(20)))
    try:
        table.create(engine)
        with engine.begin() as conn:
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
    finally:
        table.drop(engine, checkfirst=True)
        engine.dispose()


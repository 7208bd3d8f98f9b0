"""The Alembic migrations create exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from crm_store.db import make_engine
from crm_store.migrate import alembic_config, include_name, upgrade
from crm_store.models import Base


@contextmanager
def _migrated(engine: Any, revision: str, *, down: bool = False) -> Iterator[Any]:
    """Upgrade (or downgrade) to ``revision``; the migration's connection, in its transaction."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(cfg, revision)
        yield connection


def test_migrations_match_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    upgrade(engine)  # idempotent
    with engine.connect() as connection:
        options = {"compare_type": False, "include_name": include_name}
        diff = compare_metadata(MigrationContext.configure(connection, opts=options), Base.metadata)
    engine.dispose()
    assert diff == []


def test_every_model_table_exists_after_upgrade(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert set(Base.metadata.tables) <= tables


def test_conversation_ids_are_filled_from_the_facts(database_url: str) -> None:
    """0005 moves each email's Outlook conversation id out of its facts into an indexed column."""
    from sqlalchemy import text

    engine = make_engine(database_url)
    with _migrated(engine, "0004") as connection:
        connection.execute(
            text(
                "INSERT INTO synced_items (kind, dedupe_key, sequence, subject, facts, deleted_at_source, created_at,"
                " updated_at) VALUES ('email', :key, 0, '', :facts, false, '2026-01-01', '2026-01-01')"
            ),
            [
                {"key": "msg:a", "facts": '{"conversation_id": "AAECAwQFBgcICQoLDA0ODxAREhMUFQ=="}'},
                {"key": "msg:b", "facts": '{"conversation_id": null}'},
                {"key": "evt:c|", "facts": "{}"},
            ],
        )
    upgrade(engine)
    with engine.connect() as connection:
        rows = dict(connection.execute(text("SELECT dedupe_key, conversation_id FROM synced_items")).all())
    engine.dispose()
    assert rows == {"msg:a": "AAECAwQFBgcICQoLDA0ODxAREhMUFQ==", "msg:b": None, "evt:c|": None}


def test_due_activities_are_found_by_the_partial_index(database_url: str) -> None:
    """0007: planned activities by end time, instead of every activity's end time (the emails' too)."""
    from datetime import UTC, datetime

    from sqlalchemy import event

    from sync_service.pipeline.runner import due_activities

    engine = make_engine(database_url)
    with _migrated(engine, "0006"):
        pass
    assert "ix_activities_end_at" in {i["name"] for i in inspect(engine).get_indexes("activities")}
    upgrade(engine)
    indexes = {i["name"] for i in inspect(engine).get_indexes("activities")}
    assert "ix_activities_planned_end_at" in indexes and "ix_activities_end_at" not in indexes
    if engine.dialect.name == "sqlite":  # the planner's choice; PostgreSQL's depends on its statistics
        sent: list[tuple[str, Any]] = []  # the statement and parameters as a run sends them
        listen = event.listens_for(engine, "before_cursor_execute")(lambda *a: sent.append((a[2], a[3])))
        with engine.connect() as connection:
            connection.execute(due_activities(datetime(2026, 11, 20, tzinfo=UTC))).all()
            event.remove(engine, "before_cursor_execute", listen)
            statement, params = sent[-1]
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            plan = " ".join(str(row[-1]) for row in rows)
        assert "ix_activities_planned_end_at" in plan, plan
    with _migrated(engine, "0006", down=True):
        pass
    indexes = {i["name"] for i in inspect(engine).get_indexes("activities")}
    engine.dispose()
    assert "ix_activities_end_at" in indexes and "ix_activities_planned_end_at" not in indexes


def test_the_index_change_record_comes_and_goes_with_0008(database_url: str) -> None:
    """0008: the record of changes to what the candidate index reads, and its triggers on every such table."""
    from crm_store.index_changes import installed

    engine = make_engine(database_url)
    upgrade(engine)
    with engine.connect() as connection:
        assert installed(connection)
    with _migrated(engine, "0007", down=True) as connection:
        assert not installed(connection)
    upgrade(engine)
    with engine.connect() as connection:
        assert installed(connection)
    engine.dispose()


def test_contacts_from_vcard_files_become_imports_with_0009(database_url: str) -> None:
    from sqlalchemy import text

    engine = make_engine(database_url)
    with _migrated(engine, "0008") as connection:
        for name, source in (("Jane", "vcard"), ("Joe", "import"), ("Ann", "sync")):
            connection.execute(
                text("INSERT INTO contacts (name, first_name, middle_name, last_name, company, job_title, source,"
                     " created_at) VALUES (:name, '', '', '', '', '', :source, '2026-01-01')"),
                {"name": name, "source": source},
            )  # fmt: skip
    upgrade(engine)
    with engine.connect() as connection:
        rows = dict(connection.execute(text("SELECT name, source FROM contacts")).all())
    engine.dispose()
    assert rows == {"Jane": "import", "Joe": "import", "Ann": "sync"}


def test_0008_names_the_postgresql_version_it_needs(database_url: str) -> None:
    """An older PostgreSQL (no ``xid8`` or snapshot functions) gets one clear line (a ``ConfigError``, which
    the CLI prints as one), not a type error."""
    import pytest

    engine = make_engine(database_url)
    if engine.dialect.name != "postgresql":
        engine.dispose()
        pytest.skip("a PostgreSQL server's version")
    with _migrated(engine, "0007"):
        pass
    with engine.connect():  # the dialect learns the server's version on the first connection
        pass
    engine.dialect.server_version_info = (12, 18)
    from sync_service.errors import ConfigError

    with pytest.raises(ConfigError, match=r"needs PostgreSQL 13 or newer \(this server is 12\.18\)"):
        upgrade(engine)
    engine.dispose()


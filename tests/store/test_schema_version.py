"""A database the code does not match is refused up front, in one line: not upgraded since crm-sync was (each
new item would be quarantined with "no such column"), or upgraded by a newer crm-sync."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text

from crm_store.db import make_engine
from crm_store.migrate import alembic_config, upgrade
from crm_store.schema_version import SCHEMA_REVISION, schema_problem


def test_the_schema_revision_is_the_newest_migration() -> None:
    assert ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads() == [SCHEMA_REVISION]


def test_a_database_behind_or_ahead_of_the_code_is_named_with_what_to_do(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert schema_problem(engine) == "the database is not initialised; run: crm-sync init"
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "0010")
        assert schema_problem(engine) == (
            f"the database is at schema revision 0010, this crm-sync needs {SCHEMA_REVISION}; run: crm-sync init"
        )
        upgrade(engine)
        assert schema_problem(engine) is None
        with engine.begin() as connection:  # as a later version of crm-sync would leave it
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        assert schema_problem(engine) == (
            f"the database is at schema revision 9999, newer than this crm-sync knows ({SCHEMA_REVISION}): "
            "upgrade crm-sync"
        )
    finally:
        engine.dispose()


def test_commands_refuse_a_database_not_upgraded_and_init_upgrades_it(cli, database_url: str) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(database_url)
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0010")
    engine.dispose()
    refused = cli("export", "activities", "--format", "json")
    assert refused.code == 1 and refused.out == ""
    assert refused.err.strip().splitlines() == [
        "crm-sync: error: the database is at schema revision 0010, "
        f"this crm-sync needs {SCHEMA_REVISION}; run: crm-sync init"
    ]
    assert cli("init").code == 0
    assert cli("export", "activities", "--format", "json").out.strip() == "[]"


def test_init_refuses_a_database_a_newer_crm_sync_upgraded(cli, database_url: str) -> None:  # type: ignore[no-untyped-def]
    """A rollback to an older image: its `init` (the compose migrate job) says so in one line, instead of
    Alembic's "Can't locate revision", and changes nothing."""
    assert cli("init").code == 0
    engine = make_engine(database_url)
    with engine.begin() as connection:  # as a later version of crm-sync would leave it
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    refused = cli("init")
    assert refused.code == 1 and refused.err.strip().splitlines() == [
        "crm-sync: error: the database is at schema revision 9999, newer than this crm-sync knows "
        f"({SCHEMA_REVISION}): init cannot go back; run the newer crm-sync, or restore the backup taken before "
        "the upgrade"
    ]

"""A quarantine entry's id is never given to another entry once it left the quarantine (migration 0018;
audit 17b F11): ``crm-sync quarantine retry ID`` from an earlier listing cannot act on another item. SQLite
reused the highest rowid of a deleted row; PostgreSQL sequences never reuse ids."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from crm_store.db import make_engine
from crm_store.migrate import alembic_config, upgrade


def _add(connection, external_id: str) -> int:  # type: ignore[no-untyped-def]
    connection.execute(
        text("INSERT INTO quarantine (folder, external_id, reason, at, retries) VALUES ('', :e, 'bad', :at, 0)"),
        {"e": external_id, "at": "2026-11-25 10:00:00"},
    )
    found = connection.execute(text("SELECT id FROM quarantine WHERE external_id = :e"), {"e": external_id})
    return int(found.scalar_one())


def test_an_id_that_left_the_quarantine_is_not_given_again(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.begin() as connection:
        first, second = _add(connection, "a"), _add(connection, "b")
        connection.execute(text("DELETE FROM quarantine WHERE id = :id"), {"id": second})  # b got through
        third = _add(connection, "c")
    engine.dispose()
    assert first < second < third


def test_the_upgrade_keeps_the_entries_and_goes_on_after_the_highest_id(database_url: str) -> None:
    engine = make_engine(database_url)
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0017")
    with engine.begin() as connection:
        ids = [_add(connection, name) for name in ("a", "b", "c")]
        connection.execute(text("DELETE FROM quarantine WHERE id = :id"), {"id": ids[0]})
    upgrade(engine)
    with engine.begin() as connection:
        kept = list(connection.execute(text("SELECT id, external_id FROM quarantine ORDER BY id")))
        connection.execute(text("DELETE FROM quarantine WHERE id = :id"), {"id": ids[2]})
        new = _add(connection, "d")
    engine.dispose()
    assert [tuple(row) for row in kept] == [(ids[1], "b"), (ids[2], "c")]
    assert new > ids[2]

"""Run the Alembic migrations shipped in the package (``crm-sync init``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from crm_store.index_changes import CHANGES_TABLE, VERSION_TABLE

MIGRATIONS = Path(__file__).with_name("migrations")
# Tables the migrations make outside the models: the record of changes to what the candidate index is read
# from, which its triggers keep (``crm_store.index_changes``). Schema comparisons leave them out.
UNMODELLED = frozenset({CHANGES_TABLE, VERSION_TABLE})


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's ``include_name`` hook: every reflected name but the ``UNMODELLED`` tables."""
    return not (type_ == "table" and name in UNMODELLED)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    """Create or upgrade the schema to the newest revision. Idempotent."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "heads")  # parallel branches of migrations are applied together

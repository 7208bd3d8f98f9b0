"""A migrated, seeded SQLite database per test, and helpers to run an import the way the CLI does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.db import make_engine, session_factory, transaction
from crm_store.migrate import upgrade
from crm_store.models import (
    Account,
    AccountDomain,
    Contact,
    ContactEmail,
    ContactPhone,
    Lead,
    LeadEmail,
    LeadPhone,
    Opportunity,
    OpportunityParticipant,
    User,
)
from crm_store.seed import seed_defaults
from sync_service.importers.report import ImportReport

COUNTED = (
    User, Account, AccountDomain, Contact, ContactEmail, ContactPhone, Lead, LeadEmail, LeadPhone,
    Opportunity, OpportunityParticipant,
)  # fmt: skip


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path}/t.db")
    upgrade(engine)
    made = session_factory(engine)
    with transaction(made) as session:
        seed_defaults(session)
    yield made
    engine.dispose()


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """``write("a.csv", text)`` → the path; ``encoding`` / ``raw`` bytes for odd files."""

    def _write(name: str, text: str = "", *, encoding: str = "utf-8", raw: bytes | None = None) -> Path:
        path = tmp_path / name
        path.write_bytes(raw if raw is not None else text.encode(encoding))
        return path

    return _write


@pytest.fixture
def run(factory: sessionmaker[Session]) -> Callable[..., ImportReport]:
    """``run(import_x, path, **kw)``: one import in its own transaction, as ``crm-sync import`` runs it
    (committed on success, rolled back on error)."""

    def _run(importer: Callable[..., ImportReport], path: Path, **kw: Any) -> ImportReport:
        with transaction(factory) as session:
            return importer(session, path, **kw)

    return _run


@pytest.fixture
def counts(factory: sessionmaker[Session]) -> Callable[[], dict[str, int]]:
    """Row counts of every table an import writes."""

    def _counts() -> dict[str, int]:
        with factory() as session:
            return {m.__tablename__: session.scalar(select(func.count()).select_from(m)) or 0 for m in COUNTED}

    return _counts

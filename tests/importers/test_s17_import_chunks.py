"""Audit 17a F13: a big import file's records are written in chunks, not all held by the session until the end
(50,000 contacts took 600 MB). Counted, not measured: the records pending at any flush stay within a chunk."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from sync_service.importers import chunks, import_accounts, import_contacts, import_leads
from sync_service.importers.report import ImportReport

Write = Callable[..., Path]
Run = Callable[..., ImportReport]
ROWS = 60


@pytest.fixture
def pending(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many new records each flush writes; chunks of 10 records."""
    monkeypatch.setattr(chunks, "FLUSH_EVERY", 10)
    counts: list[int] = []

    def before_flush(session: Session, *_: Any) -> None:
        counts.append(len(session.new))

    event.listen(Session, "before_flush", before_flush)
    yield counts
    event.remove(Session, "before_flush", before_flush)


def test_contacts_are_written_in_chunks(write: Write, run: Run, counts: Callable[[], dict[str, int]],
                                        pending: list[int]) -> None:  # fmt: skip
    run(import_accounts, write("a.csv", "Name,Type,Domains,Territory,Owner\nAcme,customer,acme.example,,\n"))
    rows = "".join(f"P{i},L{i},Acme,p{i}@acme.example,+1 212 555 {i:04d}\n" for i in range(ROWS))
    pending.clear()
    report = run(import_contacts, write("c.csv", "First Name,Last Name,Company,E-mail Address,Mobile Phone\n" + rows))
    assert report.created == ROWS
    assert max(pending) <= 10 * 3  # a contact, its address and its phone
    assert counts()["contacts"] == ROWS


def test_leads_are_written_in_chunks(write: Write, run: Run, counts: Callable[[], dict[str, int]],
                                     pending: list[int]) -> None:  # fmt: skip
    rows = "".join(f"Lead {i},Co {i},l{i}@co{i}.example,\n" for i in range(ROWS))
    report = run(import_leads, write("l.csv", "Name,Company,Email,Phone\n" + rows))
    assert report.created == ROWS
    assert max(pending) <= 10 * 2
    assert counts()["leads"] == ROWS

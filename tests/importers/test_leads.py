"""Leads CSV import: lookups, identity, re-import, whole-file rejection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from crm_store.models import Lead
from sync_service.errors import ImportFileError
from sync_service.importers import import_leads

Write = Callable[..., Path]
Run = Callable[..., object]

LEADS = """\
Name,Company,Email,Phone,Status,Source,Owner,Comment
Jane Prospect,Initech,Jane@Initech.com,+1 202 555 0199,prospect,EXPO,Rep@OurCo.com,met at booth 12
Tom Nomail,Umbrella,,(202) 555-0100,,,,
Ana Weiß,Straße AG,ana@xn--strae-oqa.de,,Awaiting sale,Web form,,
"""


def leads(factory: sessionmaker[Session]) -> dict[str, Lead]:
    with factory() as session:
        found = session.scalars(
            select(Lead).options(selectinload(Lead.emails), selectinload(Lead.phones), selectinload(Lead.owner))
        ).all()
        return {lead.name: lead for lead in found}


def test_import_leads(factory: sessionmaker[Session], write: Write, run: Run) -> None:
    report = run(import_leads, write("leads.csv", LEADS))
    assert (report.created, report.updated, report.unchanged) == (3, 0, 0)  # type: ignore[attr-defined]
    found = leads(factory)
    jane = found["Jane Prospect"]
    assert (jane.company, jane.status, jane.source, jane.origin) == ("Initech", "Prospect", "Expo", "import")
    assert [e.email for e in jane.emails] == ["jane@initech.com"]
    assert [(p.raw, p.e164) for p in jane.phones] == [("+1 202 555 0199", "+12025550199")]
    assert jane.owner is not None and jane.owner.email == "rep@ourco.com"
    tom = found["Tom Nomail"]
    assert (tom.status, tom.source, tom.owner, tom.emails) == ("Initial Lead", None, None, [])
    ana = found["Ana Weiß"]
    assert (ana.status, ana.source, ana.emails[0].email) == ("Awaiting sale", "Web form", "ana@straße.de")


def test_reimport_changes_nothing(write: Write, run: Run, counts: Callable[[], dict]) -> None:
    path = write("leads.csv", LEADS)
    run(import_leads, path)
    before = counts()
    report = run(import_leads, path)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 3)  # type: ignore[attr-defined]
    assert counts() == before


def test_update_by_email_and_by_name_and_company(factory: sessionmaker[Session], write: Write, run: Run) -> None:
    run(import_leads, write("a.csv", LEADS))
    text = (
        "Name,Company,Email,Status\n"
        "Jane P.,Initech Inc,jane@initech.com,bad lead\n"  # same email: renamed, status changed
        "tom nomail,UMBRELLA,tom@umbrella.com,\n"  # same name + company, had no email: gains one
    )
    report = run(import_leads, write("b.csv", text))
    assert (report.created, report.updated, report.unchanged) == (0, 2, 0)  # type: ignore[attr-defined]
    found = leads(factory)
    assert (found["Jane P."].company, found["Jane P."].status) == ("Initech Inc", "Bad Lead")
    tom = found["tom nomail"]
    assert ([e.email for e in tom.emails], tom.status) == (["tom@umbrella.com"], "Initial Lead")


@pytest.mark.parametrize(
    ("rows", "line", "reason"),
    [
        (["A,X,a@x.com,,", ",X,,,"], 3, "Name is empty"),
        (["A,X,a@x.com,,", "B,X,,Hot,"], 3, "unknown lead status 'Hot' \\(allowed: Initial Lead, Prospect"),
        (["A,X,a@x.com,,", "B,X,,,Billboard"], 3, "unknown source 'Billboard'"),
        (["A,X,a@x,,"], 2, "'a@x' is not an email address"),
        (["A,X,a@x.com,,", "", "B,Y,A@X.com,,"], 4, "the same lead as line 2"),
        (["A,X,,,", "a,x,a@x.com,,"], 3, "the same lead as line 2"),
    ],
)
def test_bad_file_is_rejected_whole(
    write: Write, run: Run, counts: Callable[[], dict], rows: list[str], line: int, reason: str
) -> None:
    before = counts()
    text = "Name,Company,Email,Status,Source\n" + "\n".join(rows) + "\n"
    with pytest.raises(ImportFileError, match=reason) as err:
        run(import_leads, write("bad.csv", text))
    assert err.value.line == line
    assert counts() == before


def test_missing_name_column(write: Write, run: Run) -> None:
    with pytest.raises(ImportFileError, match="missing column 'Name'"):
        run(import_leads, write("bad.csv", "Company,Email\nX,a@x.com\n"))

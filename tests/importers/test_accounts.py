"""Accounts CSV import: create, upsert, domains, owners, and whole-file rejection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.models import Account, User
from sync_service.errors import ImportFileError
from sync_service.importers import import_accounts

Write = Callable[..., Path]

ACCOUNTS = """\
Name,Type,Domains,Territory,Owner,Notes
Acme Corp,Customer,acme.com; https://www.acme-corp.de/,EMEA,Rep.One@ourco.com,ignored
Bücher GmbH,,xn--bcher-kva.de,,rep.one@ourco.com,
Globex,prospect,@globex.com,Americas,,
"""


def accounts(factory: sessionmaker[Session]) -> dict[str, Account]:
    with factory() as session:
        found = session.scalars(select(Account)).all()
        for account in found:
            _ = account.domains, account.owner
        return {a.name: a for a in found}


def test_import_accounts(factory: sessionmaker[Session], write: Write, run: Callable[..., object]) -> None:
    report = run(import_accounts, write("accounts.csv", ACCOUNTS))
    assert (report.created, report.updated, report.unchanged) == (3, 0, 0)  # type: ignore[attr-defined]
    # An unrelated extra column is ignored, and the summary says so.
    assert (
        report.summary()  # type: ignore[attr-defined]
        == "accounts: 3 rows — 3 created, 0 updated, 0 unchanged; columns ignored: Notes"
    )
    found = accounts(factory)
    acme = found["Acme Corp"]
    assert (acme.name_key, acme.type, acme.territory) == ("acme corp", "customer", "EMEA")
    assert [d.domain for d in acme.domains] == ["acme.com", "acme-corp.de"]
    assert acme.owner is not None and acme.owner.email == "rep.one@ourco.com"
    buecher = found["Bücher GmbH"]
    assert (buecher.type, buecher.territory, [d.domain for d in buecher.domains]) == ("prospect", None, ["bücher.de"])
    assert buecher.owner_id == acme.owner_id  # one rep, created once
    assert found["Globex"].owner is None
    with factory() as session:
        assert session.scalars(select(User.email)).all() == ["rep.one@ourco.com"]


def test_reimport_changes_nothing(write: Write, run: Callable[..., object], counts: Callable[[], dict]) -> None:
    path = write("accounts.csv", ACCOUNTS)
    run(import_accounts, path)
    before = counts()
    report = run(import_accounts, path)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 3)  # type: ignore[attr-defined]
    assert counts() == before


def test_update_sets_the_listed_domains_and_an_empty_cell_keeps_them(
    factory: sessionmaker[Session], write: Write, run: Callable[..., object]
) -> None:
    run(import_accounts, write("a.csv", ACCOUNTS))
    changed = "Name,Type,Domains,Territory,Owner\nACME CORP,prospect,acme.io,,rep.two@ourco.com\nGlobex,,,,\n"
    report = run(import_accounts, write("b.csv", changed))
    assert (report.created, report.updated, report.unchanged) == (0, 1, 1)  # type: ignore[attr-defined]
    found = accounts(factory)
    acme = found["ACME CORP"]
    assert [d.domain for d in acme.domains] == ["acme.io"]  # the Domains cell is the list (audit 17b F2)
    assert [d.domain for d in found["Globex"].domains] == ["globex.com"]  # an empty cell leaves them alone
    assert (acme.type, acme.territory) == ("prospect", "EMEA")  # empty Territory leaves it alone
    assert acme.owner is not None and acme.owner.email == "rep.two@ourco.com"


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("Name,Type\nAcme,customer\n,prospect\n", 3, "Name is empty"),
        ("Name,Type\nAcme,customer\nGlobex,partner\n", 3, "Type must be 'customer' or 'prospect'"),
        ("Name,Domains\nAcme,acme.com\n\nGlobex,globex;gmail.com\n", 4, "no dot"),
        ("Name,Domains\nAcme,acme.com\nGlobex,gmail.com\n", 3, "public mail provider"),
        ("Name,Owner\nAcme,not-an-address\n", 2, "not an email address"),
        ("Name,Domains\nAcme,acme.com\nGlobex,www.ACME.com\n", 3, "'acme.com' is also listed for 'Acme' on line 2"),
        ("Name,Domains\nAcme,acme.com\nacme,acme.de\n", 3, "the same account as line 2"),
        ("Type,Domains\ncustomer,acme.com\n", 1, "missing column 'Name'"),
    ],
)
def test_bad_file_is_rejected_whole(
    write: Write, run: Callable[..., object], counts: Callable[[], dict], text: str, line: int, reason: str
) -> None:
    before = counts()
    with pytest.raises(ImportFileError, match=reason) as err:
        run(import_accounts, write("bad.csv", text))
    assert err.value.line == line
    assert str(err.value).startswith(f"line {line}: ")
    assert counts() == before


def test_domain_of_another_account_is_rejected(
    write: Write, run: Callable[..., object], counts: Callable[[], dict]
) -> None:
    run(import_accounts, write("a.csv", ACCOUNTS))
    before = counts()
    text = "Name,Domains\nNew One,new.com\nInitech,initech.com;bücher.de\n"
    with pytest.raises(ImportFileError, match=r"'bücher\.de' already belongs to account 'Bücher GmbH'") as err:
        run(import_accounts, write("b.csv", text))
    assert err.value.line == 3
    assert counts() == before  # New One (line 2) was not written either


def test_nothing_is_written_before_the_whole_file_is_checked(factory: sessionmaker[Session], write: Write) -> None:
    path = write("bad.csv", "Name,Owner\nAcme,rep@ourco.com\nGlobex,broken\n")
    with factory() as session:
        with pytest.raises(ImportFileError):
            import_accounts(session, path)
        assert not session.new  # the caller's rollback has nothing to undo
        assert session.scalars(select(Account)).all() == []


def test_utf8_bom(factory: sessionmaker[Session], write: Write, run: Callable[..., object]) -> None:
    report = run(import_accounts, write("accounts.csv", ACCOUNTS, encoding="utf-8-sig"))
    assert report.created == 3  # type: ignore[attr-defined]
    assert "Acme Corp" in accounts(factory)

"""A misspelt column must not drop its data without a word (SPEC §5: a bad file is rejected whole, with the line
and the reason). Fixed-format files (accounts, leads, opportunities) reject a column that resembles one they
lack and ignore — naming them in the summary — unrelated ones; the contacts file reads other programs' names
for its columns (Google Contacts, spreadsheets) and rejects a mail column it cannot read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sync_service.bootstrap import App
from sync_service.importers.headers import lookalike, normalised

REP = "alice@northwind-sales.example"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def exported(cli: Any, kind: str) -> list[dict[str, Any]]:
    done = cli("export", kind, "--format", "json")
    assert done.code == 0, done.err
    return list(json.loads(done.out))


def base(cli: Any, tmp_path: Path) -> None:
    accounts = f"Name,Type,Domains,Territory,Owner\nAcme,customer,acme.example,East,{REP}\n"
    assert cli("import", "accounts", write(tmp_path, "base_a.csv", accounts)).code == 0
    contacts = "First Name,Last Name,Company,E-mail Address\nJohn,Doe,Acme,john.doe@acme.example\n"
    assert cli("import", "contacts", write(tmp_path, "base_c.csv", contacts)).code == 0


@pytest.mark.parametrize(
    ("kind", "text", "reason"),
    [
        (
            "accounts",
            f"Name,Type,Domain,Territory,Owner\nTypo Co,customer,typo.example,East,{REP}\n",
            "line 1: unknown column 'Domain' — did you mean 'Domains'? "
            "(the columns are: Name, Type, Domains, Territory, Owner)",
        ),
        (
            "opportunities",
            "Title,Account,Stage,Owner,Contact,Amount,Close Date,Source\n"
            f"Typo Opp,Acme,Qualification,{REP},john.doe@acme.example,5,2027-01-01,Expo\n",
            "line 1: unknown column 'Contact' — did you mean 'Contacts'? (the columns are: Title, Account, Stage, "
            "Owner, Contacts, Amount, Close Date, Source)",
        ),
        (
            "leads",
            f"Name,Company,E-mail,Phone,Status,Source,Owner\nT L,Co,tl@lco.example,,Initial Lead,Expo,{REP}\n",
            "line 1: unknown column 'E-mail' — did you mean 'Email'? (the columns are: Name, Company, Email, Phone, "
            "Status, Source, Owner)",
        ),
        (
            "accounts",
            f"\nname,type,domains,Teritory,owner\nTypo Co,customer,typo.example,East,{REP}\n",
            "line 2: unknown column 'Teritory' — did you mean 'Territory'?",
        ),
        (
            "opportunities",
            "Titel,Account,Stage\nTypo Opp,Acme,Qualification\n",
            "line 1: missing column 'Title' (the header has: Titel, Account, Stage) — is 'Titel' meant to be 'Title'?",
        ),
    ],
)
def test_a_misspelt_column_rejects_the_file(
    app: App, cli: Any, tmp_path: Path, kind: str, text: str, reason: str
) -> None:
    base(cli, tmp_path)
    before = {k: exported(cli, k) for k in ("accounts", "leads", "opportunities")}
    done = cli("import", kind, write(tmp_path, f"{kind}.csv", text))
    assert done.code == 1
    [line] = done.err.splitlines()
    assert line.startswith(f"crm-sync: error: {reason}")
    assert {k: exported(cli, k) for k in before} == before  # nothing of the file was imported


def test_an_unrelated_column_is_ignored_and_named(app: App, cli: Any, tmp_path: Path) -> None:
    base(cli, tmp_path)
    text = f"Title,Account,Stage,Owner,Contacts,Notes,Probability\nBig deal,Acme,Qualification,{REP},,call back,40\n"
    done = cli("import", "opportunities", write(tmp_path, "o.csv", text))
    assert done.code == 0, done.err
    assert "1 created, 0 updated, 0 unchanged; columns ignored: Notes, Probability" in done.out
    assert [o["title"] for o in exported(cli, "opportunities")] == ["Big deal"]


def test_ignored_column_names_are_printed_as_written(app: App, cli: Any, tmp_path: Path) -> None:
    """The CLI prints the summary as rich markup: a column named like a tag neither vanishes nor fails the run."""
    text = "Name,Type,Domains,[bold]Notes,[/x]\nZed,customer,zed.example,a,b\n"
    done = cli("import", "accounts", write(tmp_path, "a.csv", text))
    assert done.code == 0, done.err
    assert "columns ignored: [bold]Notes, [/x]" in done.out


def test_other_programs_contact_columns_are_read(app: App, cli: Any, tmp_path: Path) -> None:
    """A spreadsheet's ``Email Address`` (the audit's file) and Google Contacts' export headers."""
    base(cli, tmp_path)
    sheet = "First Name,Last Name,Company,Email Address\nT,C,Acme,tc@acme.example\n"
    assert cli("import", "contacts", write(tmp_path, "sheet.csv", sheet)).code == 0
    google = (
        "Given Name,Family Name,Organization Name,Organization Title,E-mail 1 - Label,E-mail 1 - Value,"
        "E-mail 2 - Value,Phone 1 - Label,Phone 1 - Value\n"
        "Gail,Google,Acme,CTO,* Work,gail@acme.example,gail@home.example,Mobile,+1 202 555 0142\n"
    )
    assert cli("import", "contacts", write(tmp_path, "google.csv", google)).code == 0
    plain = "Full Name,Email\nPat Plain,pat@acme.example\n"
    assert cli("import", "contacts", write(tmp_path, "plain.csv", plain)).code == 0
    found = {c["name"]: c for c in exported(cli, "contacts")}
    assert found["T C"]["emails"] == ["tc@acme.example"] and found["T C"]["account"] == "Acme"
    gail = found["Gail Google"]
    assert (gail["emails"], gail["job_title"], gail["account"]) == (
        ["gail@acme.example", "gail@home.example"], "CTO", "Acme"
    )
    assert gail["phones"] == ["+12025550142"]
    assert found["Pat Plain"]["emails"] == ["pat@acme.example"]


def test_a_contacts_file_whose_mail_column_cannot_be_read_is_rejected(app: App, cli: Any, tmp_path: Path) -> None:
    text = "First Name,Last Name,E-mail Adress\nT,C,tc@acme.example\n"
    done = cli("import", "contacts", write(tmp_path, "c.csv", text))
    assert done.code == 1
    assert done.err.strip() == (
        "crm-sync: error: line 1: no e-mail column this importer reads, but a column 'E-mail Adress': name it "
        "'E-mail Address' (or 'E-mail 2 Address', 'E-mail 3 Address')"
    )
    assert exported(cli, "contacts") == []


def test_an_outlook_export_is_read_as_before(app: App, cli: Any, tmp_path: Path) -> None:
    """Outlook's own columns that merely contain "mail" or "phone" are no aliases."""
    text = (
        "Title,First Name,Last Name,Company,E-mail Address,E-mail Type,E-mail Display Name,Business Phone,"
        "Business Street,Notes\n"
        "Dr.,Olga,Outlook,Acme,olga@acme.example,SMTP,Olga (olga@acme.example),+1 202 555 0100,Main St 1,n\n"
    )
    done = cli("import", "contacts", write(tmp_path, "outlook.csv", text))
    assert done.code == 0, done.err
    assert "columns ignored" not in done.out  # an Outlook export has dozens of columns the importer does not read
    [olga] = exported(cli, "contacts")
    assert (olga["name"], olga["emails"]) == ("Olga Outlook", ["olga@acme.example"])


@pytest.mark.parametrize(
    ("cell", "column"),
    [("Domain", "Domains"), ("contact", "Contacts"), ("E-mail", "Email"), ("Email Address", "Email"),
     ("close_date", "Close Date"), ("Phone Number", "Phone"), ("Ownr", "Owner")],
)
def test_lookalikes(cell: str, column: str) -> None:
    assert lookalike([cell], ["Domains", "Contacts", "Email", "Close Date", "Phone", "Owner"]) == (cell, column)


@pytest.mark.parametrize("cell", ["Notes", "Probability", "Region", "Score", "Comment", "Id"])
def test_unrelated_columns_are_no_lookalikes(cell: str) -> None:
    assert lookalike([cell], ["Name", "Company", "Email", "Phone", "Status", "Source", "Owner", "Domains"]) is None


def test_normalised_spellings() -> None:
    assert {normalised(c) for c in ("E-mail Address", "Email", "e-mail", "EMAIL ADDRESS")} == {"email"}
    assert normalised("E-mail 1 - Value") == normalised("Email 1") == "email1"
    assert normalised("Address") == "address" and normalised("Name") == "name"

"""Audit 17b F2: the accounts and opportunities files are master lists for the rows they contain.

The Domains cell is the account's domain list and the Contacts cell the participants imports manage: what a
cell no longer lists is removed and named in the summary; removals come before additions, so a domain can move
between two rows of one file; an empty cell leaves the stored list alone; the lead's person that a conversion
made a participant is not the file's to remove; importing the same file again changes nothing (SPEC §5).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crm_store.db import make_engine, session_factory
from crm_store.models import OpportunityParticipant

ACCOUNTS = "Name,Type,Domains,Territory,Owner\n"
CONTACTS = (
    "First Name,Last Name,Company,E-mail Address\n"
    "Hank,Scorpio,Globex,hank@globex.example\nMindy,Simmons,Globex,mindy@globex.example\n"
)
OPPORTUNITIES = "Title,Account,Stage,Owner,Contacts,Amount,Close Date,Source\n"


def csv(tmp_path: Path, name: str, header: str, *rows: str) -> str:
    path = tmp_path / name
    path.write_text(header + "".join(f"{row}\n" for row in rows), encoding="utf-8")
    return str(path)


def ok(result: Any) -> str:
    assert result.code == 0, (result.out, result.err)
    return str(result.out)


def domains(cli: Any) -> dict[str, list[str]]:
    import json

    return {a["name"]: a["domains"] for a in json.loads(ok(cli("export", "accounts", "--format", "json")))}


def participants(cli: Any, title: str) -> list[str]:
    import json

    emails = {c["id"]: c["emails"][0] for c in json.loads(ok(cli("export", "contacts", "--format", "json")))}
    found = json.loads(ok(cli("export", "opportunities", "--format", "json")))
    return [emails[c] for o in found if o["title"] == title for c in o["participants"]]


def test_a_domain_the_row_no_longer_lists_is_removed_and_named(cli, tmp_path: Path) -> None:
    ok(cli("init"))
    ok(cli("import", "accounts", csv(tmp_path, "a1.csv", ACCOUNTS, "Globex,prospect,globex.example;globex.co,,")))
    path = csv(tmp_path, "a2.csv", ACCOUNTS, "Globex,prospect,globex.example,,")
    out = ok(cli("import", "accounts", path))
    assert out.startswith("accounts: 1 rows — 0 created, 1 updated, 0 unchanged; Globex lost domain globex.co\n")
    assert domains(cli) == {"Globex": ["globex.example"]}
    again = ok(cli("import", "accounts", path))
    assert again == "accounts: 1 rows — 0 created, 0 updated, 1 unchanged\n"  # no change, no re-matching

    # An empty Domains cell is no list: it leaves the domains alone (as every empty cell leaves its field).
    empty = ok(cli("import", "accounts", csv(tmp_path, "a3.csv", ACCOUNTS, "Globex,,,,")))
    assert empty == "accounts: 1 rows — 0 created, 0 updated, 1 unchanged\n"
    assert domains(cli) == {"Globex": ["globex.example"]}


def test_a_domain_moves_from_one_row_to_another_in_one_import(cli, tmp_path: Path) -> None:
    ok(cli("init"))
    ok(cli("import", "accounts", csv(tmp_path, "a1.csv", ACCOUNTS, "Globex,,globex.example;globex.co,,",
                                     "Initech,,initech.example,,")))  # fmt: skip
    moved = csv(tmp_path, "a2.csv", ACCOUNTS, "Initech,,initech.example;globex.co,,", "Globex,,globex.example,,")
    out = ok(cli("import", "accounts", moved))
    assert "0 created, 2 updated, 0 unchanged; Globex lost domain globex.co to Initech" in out
    assert domains(cli) == {"Globex": ["globex.example"], "Initech": ["initech.example", "globex.co"]}
    assert "0 updated, 2 unchanged" in ok(cli("import", "accounts", moved))

    # Claiming a domain whose account's row does not give it up still rejects the whole file.
    taken = csv(tmp_path, "a3.csv", ACCOUNTS, "Globex,,globex.example;globex.co,,")
    result = cli("import", "accounts", taken)
    assert (result.code, result.err) == (1, "crm-sync: error: line 2: domain 'globex.co' already belongs to "
                                            "account 'Initech'\n")  # fmt: skip
    assert domains(cli) == {"Globex": ["globex.example"], "Initech": ["initech.example", "globex.co"]}


def test_a_renamed_row_is_told_about_account_rename(cli, tmp_path: Path) -> None:
    ok(cli("init"))
    ok(cli("import", "accounts", csv(tmp_path, "a1.csv", ACCOUNTS, "Globex,prospect,globex.example,East,")))
    renamed = csv(tmp_path, "a2.csv", ACCOUNTS, "Globex Corporation,prospect,globex.example,East,")
    result = cli("import", "accounts", renamed)
    assert (result.code, result.err) == (
        1,
        "crm-sync: error: line 2: domain 'globex.example' already belongs to account 'Globex' (if the account was "
        'renamed: crm-sync account rename "Globex" "Globex Corporation", then import again)\n',
    )
    without = csv(tmp_path, "a3.csv", ACCOUNTS, "Globex Corporation,prospect,,East,")
    out = ok(cli("import", "accounts", without))
    assert out.startswith(
        "accounts: 1 rows — 1 created, 0 updated, 0 unchanged; Globex Corporation created without domains "
        '(a renamed account? crm-sync account rename OLD_NAME "Globex Corporation")\n'
    )


def test_a_participant_the_row_no_longer_lists_is_removed_and_named(cli, tmp_path: Path) -> None:
    ok(cli("init"))
    ok(cli("import", "accounts", csv(tmp_path, "a.csv", ACCOUNTS, "Globex,prospect,globex.example,,")))
    ok(cli("import", "contacts", csv(tmp_path, "c.csv", CONTACTS)))
    both = "Globex Pilot,Globex,,,hank@globex.example;mindy@globex.example,,,"
    ok(cli("import", "opportunities", csv(tmp_path, "o1.csv", OPPORTUNITIES, both)))
    path = csv(tmp_path, "o2.csv", OPPORTUNITIES, "Globex Pilot,Globex,,,hank@globex.example,,,")
    out = ok(cli("import", "opportunities", path))
    assert out.startswith(
        "opportunities: 1 rows — 0 created, 1 updated, 0 unchanged; Globex Pilot lost participant mindy@globex.example"
    )
    assert participants(cli, "Globex Pilot") == ["hank@globex.example"]
    assert ok(cli("import", "opportunities", path)) == "opportunities: 1 rows — 0 created, 0 updated, 1 unchanged\n"
    # An empty Contacts cell leaves the participants alone.
    ok(cli("import", "opportunities", csv(tmp_path, "o3.csv", OPPORTUNITIES, "Globex Pilot,Globex,,,,,,")))
    assert participants(cli, "Globex Pilot") == ["hank@globex.example"]


def test_the_lead_person_a_conversion_added_is_not_the_files_to_remove(cli, database_url: str, tmp_path) -> None:
    ok(cli("init"))
    ok(cli("import", "accounts", csv(tmp_path, "a.csv", ACCOUNTS, "Globex,prospect,globex.example,,")))
    ok(cli("import", "contacts", csv(tmp_path, "c.csv", CONTACTS)))
    leads = "Name,Company,Email,Phone,Status,Source,Owner\nRita Lead,Globex,rita@globex.example,,,,\n"
    ok(cli("import", "leads", csv(tmp_path, "l.csv", leads)))
    ok(cli("lead", "status", "1", "Awaiting sale"))  # makes the opportunity "Globex" with Rita as participant
    assert participants(cli, "Globex") == ["rita@globex.example"]

    ok(cli("import", "opportunities", csv(tmp_path, "o1.csv", OPPORTUNITIES, "Globex,Globex,,,hank@globex.example,,,")))
    assert participants(cli, "Globex") == ["rita@globex.example", "hank@globex.example"]
    out = ok(cli("import", "opportunities", csv(tmp_path, "o2.csv", OPPORTUNITIES,
                                                "Globex,Globex,,,mindy@globex.example,,,")))  # fmt: skip
    assert "Globex lost participant hank@globex.example" in out and "rita" not in out
    assert participants(cli, "Globex") == ["rita@globex.example", "mindy@globex.example"]
    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        flags = sorted((p.contact.primary_email, p.imported) for p in session.query(OpportunityParticipant))
    engine.dispose()
    assert flags == [("mindy@globex.example", True), ("rita@globex.example", False)]

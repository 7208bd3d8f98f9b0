"""Google Contacts' multi-value cells: several addresses (phones) of one label in one cell, joined by ``:::``.

They used to reject the whole file (an address with two ``@``); each value is now one of the contact's
addresses (phones), after the other columns' values, without repeats — and importing the file again changes
nothing (SPEC §5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sync_service.bootstrap import App

HEADER = (
    "Given Name,Family Name,Organization Name,Organization Title,E-mail 1 - Label,E-mail 1 - Value,"
    "E-mail 2 - Label,E-mail 2 - Value,Phone 1 - Label,Phone 1 - Value,Phone 2 - Label,Phone 2 - Value\n"
)
ANN = (
    "Ann,Archer,Acme,CTO ::: Advisor,* Work,ann@acme.example ::: ann.private@gmail.com,Home,"
    "ann@home.example ::: ANN@acme.example,Mobile,+1 202 555 0100 ::: +1 202 555 0199,Work,+1 202 555 0100\n"
)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def exported(cli: Any) -> list[dict[str, Any]]:
    done = cli("export", "contacts", "--format", "json")
    assert done.code == 0, done.err
    return list(json.loads(done.out))


def test_each_value_of_a_multi_value_cell_is_an_address_or_phone(app: App, cli: Any, tmp_path: Path) -> None:
    path = write(tmp_path, "google.csv", HEADER + ANN)
    done = cli("import", "contacts", path)
    assert done.code == 0, done.err
    assert "1 created, 0 updated, 0 unchanged" in done.out
    [ann] = exported(cli)
    # each cell's first value in column order, then the further values; a repeat (any case) is dropped
    assert ann["emails"] == ["ann@acme.example", "ann@home.example", "ann.private@gmail.com"]
    assert ann["phones"] == ["+12025550100", "+12025550199"]
    # another column's ":::" has no single right reading: taken as written, as before
    assert ann["job_title"] == "CTO ::: Advisor"

    again = cli("import", "contacts", path)
    assert again.code == 0, again.err
    assert "0 created, 0 updated, 1 unchanged" in again.out
    assert exported(cli) == [ann]


def test_a_value_added_to_a_cell_goes_after_the_stored_addresses(app: App, cli: Any, tmp_path: Path) -> None:
    """A file imported before, then exported again by Google with one more address in the first cell: the new
    address is added after those stored, nothing else changes."""
    before = ANN.replace("ann@acme.example ::: ann.private@gmail.com", "ann@acme.example")
    assert cli("import", "contacts", write(tmp_path, "before.csv", HEADER + before)).code == 0
    assert exported(cli)[0]["emails"] == ["ann@acme.example", "ann@home.example"]
    done = cli("import", "contacts", write(tmp_path, "after.csv", HEADER + ANN))
    assert done.code == 0, done.err
    assert "0 created, 1 updated, 0 unchanged" in done.out
    [ann] = exported(cli)
    assert ann["emails"] == ["ann@acme.example", "ann@home.example", "ann.private@gmail.com"]


def test_a_bad_value_in_a_multi_value_cell_rejects_the_file(app: App, cli: Any, tmp_path: Path) -> None:
    text = HEADER + ANN + ANN.replace("Ann,Archer", "Bea,Baker").replace(
        "ann@acme.example ::: ann.private@gmail.com", "bea@acme.example ::: not-an-address"
    )
    done = cli("import", "contacts", write(tmp_path, "bad.csv", text))
    assert done.code == 1
    assert done.err.strip() == (
        "crm-sync: error: line 3: E-mail Address: 'not-an-address' is not an email address"
    )
    assert exported(cli) == []  # the whole file is rejected


def test_an_outlook_row_without_separators_is_read_as_before(app: App, cli: Any, tmp_path: Path) -> None:
    text = (
        "First Name,Last Name,E-mail Address,E-mail 2 Address,Business Phone,Mobile Phone\n"
        "Olga,Outlook,Olga (olga@acme.example),olga@home.example,+1 202 555 0110,+1 202 555 0111\n"
    )
    assert cli("import", "contacts", write(tmp_path, "outlook.csv", text)).code == 0
    [olga] = exported(cli)
    assert olga["emails"] == ["olga@acme.example", "olga@home.example"]
    assert olga["phones"] == ["+12025550110", "+12025550111"]

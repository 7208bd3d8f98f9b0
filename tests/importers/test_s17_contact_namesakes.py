"""Contacts import (audit F1): a namesake at the same account is flagged; two owners' addresses name the merge."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sync_service.errors import ImportFileError
from sync_service.importers import import_accounts, import_contacts
from sync_service.importers.report import ImportReport

Write = Callable[..., Path]
Run = Callable[..., ImportReport]
ACCOUNTS = (
    "Name,Type,Domains,Territory,Owner\n"
    "Acme Corp,customer,acme.example,West,\n"
    "Globex,prospect,globex.example,East,\n"
)
HEADER = "First Name,Last Name,Company,E-mail Address,E-mail 2 Address\n"


@pytest.fixture(autouse=True)
def _accounts(write: Write, run: Run) -> None:
    run(import_accounts, write("accounts.csv", ACCOUNTS))


def test_a_new_namesake_at_the_same_account_is_named_with_the_merge(write: Write, run: Run) -> None:
    run(import_contacts, write("a.csv", HEADER + "John,Smith,Acme Corp,john@acme.example,\n"))
    rows = (
        "Jane,Doe,Acme Corp,jane@acme.example,\n"  # no namesake
        "John,Smith,Acme Corp,john.smith@acme.example,\n"  # John's new address
        "John,Smith,Globex,john@globex.example,\n"  # a namesake at another account: no line
        "John,Smith,,john@gmail.com,\n"  # no account: no line
    )
    report = run(import_contacts, write("b.csv", HEADER + rows))
    assert report.summary().splitlines() == [
        "contacts: 4 rows — 4 created, 0 updated, 0 unchanged",
        "line 3: created John Smith (contact 3); contact 1 at Acme Corp has the same name — if it is the same "
        "person: crm-sync contact merge 3 1",
    ]
    again = run(import_contacts, write("b.csv", HEADER + rows))
    assert again.summary() == "contacts: 4 rows — 0 created, 0 updated, 4 unchanged"


def test_addresses_of_several_contacts_name_the_merges(write: Write, run: Run) -> None:
    header = "First Name,Company,E-mail Address,E-mail 2 Address,E-mail 3 Address\n"
    run(import_contacts, write("a.csv", header + "A,Acme Corp,a@acme.example,,\nB,,b@x.example,,\nC,,c@y.example,,\n"))
    with pytest.raises(ImportFileError) as err:
        run(import_contacts, write("b.csv", header + "A,Acme Corp,c@y.example,a@acme.example,b@x.example\n"))
    assert str(err.value) == (
        "line 2: its addresses (c@y.example, a@acme.example, b@x.example) belong to 3 different contacts; "
        "merge them first: crm-sync contact merge 2 1, crm-sync contact merge 3 1"
    )

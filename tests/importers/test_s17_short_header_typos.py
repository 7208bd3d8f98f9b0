"""Short misspelt headers: a swap or one wrong, missing or extra letter in a short column name (``Nmae``) is too
much for the similarity ratio, yet the commonest typo; it gets the "did you mean" hint too (Damerau–Levenshtein
distance 1, case-insensitive), while unrelated columns (``Notes``) are still ignored, not taken for a column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sync_service.bootstrap import App
from sync_service.importers.accounts import COLUMNS as ACCOUNT_COLUMNS
from sync_service.importers.headers import lookalike, one_slip
from sync_service.importers.leads import COLUMNS as LEAD_COLUMNS
from sync_service.importers.opportunities import COLUMNS as OPPORTUNITY_COLUMNS

ALL_COLUMNS = tuple(dict.fromkeys((*ACCOUNT_COLUMNS, *LEAD_COLUMNS, *OPPORTUNITY_COLUMNS)))


@pytest.mark.parametrize(
    ("cell", "column"),
    [("Nmae", "Name"), ("NMAE", "Name"), ("Stgae", "Stage"), ("Onwer", "Owner"), ("Titel", "Title"),
     ("Tpye", "Type"), ("Nme", "Name"), ("Naame", "Name"), ("Nome", "Name"), ("Emial", "Email")],
)
def test_one_slip_in_a_short_name_is_a_lookalike(cell: str, column: str) -> None:
    assert lookalike([cell], [column]) == (cell, column)
    assert lookalike([cell], ALL_COLUMNS) == (cell, column)


@pytest.mark.parametrize(
    "cell", ["Notes", "Note", "Date", "Time", "Rate", "Age", "Id", "Region", "Score", "Comment", "Tags", "Zip"]
)
def test_unrelated_short_columns_are_still_no_lookalikes(cell: str) -> None:
    assert lookalike([cell], ALL_COLUMNS) is None


@pytest.mark.parametrize(
    ("typed", "meant", "slip"),
    [("nmae", "name", True), ("name", "name", True), ("nme", "name", True), ("nname", "name", True),
     ("nam", "name", True), ("nane", "name", True), ("eman", "name", False), ("note", "name", False),
     ("anme", "name", True), ("naem", "name", True), ("nmea", "name", False), ("na", "name", False)],
)
def test_one_slip(typed: str, meant: str, slip: bool) -> None:
    assert one_slip(typed, meant) is slip
    assert one_slip(meant, typed) is slip


def test_a_short_misspelt_column_gets_the_hint(app: App, cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text("Nmae,Type,Domains,Onwer\nTypo Co,customer,typo.example,x@northwind-sales.example\n")
    done = cli("import", "accounts", str(path))
    assert done.code == 1
    assert done.err.strip() == (
        "crm-sync: error: line 1: missing column 'Name' (the header has: Nmae, Type, Domains, Onwer) — is 'Nmae' "
        "meant to be 'Name'?"
    )
    path.write_text("Name,Type,Domains,Onwer\nTypo Co,customer,typo.example,x@northwind-sales.example\n")
    done = cli("import", "accounts", str(path))
    assert done.code == 1
    assert done.err.strip().startswith("crm-sync: error: line 1: unknown column 'Onwer' — did you mean 'Owner'?")


def test_a_notes_column_is_still_ignored(app: App, cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text("Type,Domains,Notes,Nmae\nTypo Co,customer,typo.example,call back\n")
    done = cli("import", "accounts", str(path))
    assert done.code == 1  # Nmae, not Notes, is taken for the missing Name
    assert "is 'Nmae' meant to be 'Name'?" in done.err
    path.write_text("Name,Type,Domains,Notes\nTypo Co,customer,typo.example,call back\n")
    done = cli("import", "accounts", str(path))
    assert done.code == 0, done.err
    assert "columns ignored: Notes" in done.out

"""Reading import CSVs: encodings, header checks, physical line numbers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sync_service.errors import ImportFileError
from sync_service.importers.csvfile import SeenRows, at_line, iter_rows

Write = Callable[..., Path]
COLS = ("Name", "Domains")


def rows(path: Path, **kw: object) -> list[tuple[int, dict[str, str]]]:
    return list(iter_rows(path, COLS, **kw))  # type: ignore[arg-type]


def test_rows_with_line_numbers_stripped_cells_and_unknown_columns_ignored(write: Write) -> None:
    path = write("a.csv", "Name,Extra,Domains\n  Acme ,x, acme.com \n\nGlobex,y\n")
    assert rows(path) == [
        (2, {"Name": "Acme", "Domains": "acme.com"}),
        (4, {"Name": "Globex", "Domains": ""}),
    ]


def test_header_matches_case_insensitively(write: Write) -> None:
    path = write("a.csv", "name, DOMAINS \nAcme,acme.com\n")
    assert rows(path, required=("Name",)) == [(2, {"Name": "Acme", "Domains": "acme.com"})]


def test_quoted_multiline_cell_keeps_physical_line_numbers(write: Write) -> None:
    path = write("a.csv", 'Name,Domains\r\n"Acme\r\nInc",acme.com\r\n"Glo\n\nbex",globex.com\r\nInitech,\r\n')
    assert [line for line, _ in rows(path)] == [2, 4, 7]
    assert rows(path)[0][1]["Name"] == "Acme\r\nInc"


def test_utf8_bom_is_accepted(write: Write) -> None:
    path = write("a.csv", "\ufeffName,Domains\nÄcme,äcme.de\n")
    assert rows(path, required=("Name",)) == [(2, {"Name": "Äcme", "Domains": "äcme.de"})]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_outlook_export_with_bom(write: Write, encoding: str) -> None:
    text = "Name\tDomains\r\nMüller GmbH\tmüller.de\r\n"
    raw = text.encode(encoding)
    if encoding == "utf-16-be":
        raw = b"\xfe\xff" + raw
    path = write("a.csv", raw=raw)
    assert rows(path) == [(2, {"Name": "Müller GmbH", "Domains": "müller.de"})]


def test_semicolon_delimiter_from_the_header(write: Write) -> None:
    path = write("a.csv", "Name;Domains\nAcme;acme.com\n")
    assert rows(path) == [(2, {"Name": "Acme", "Domains": "acme.com"})]


def test_non_utf8_file_names_the_line_and_the_reason(write: Write) -> None:
    path = write("a.csv", raw="Name,Domains\nAcme,acme.com\nCafé,cafe.fr\n".encode("cp1252"))
    with pytest.raises(ImportFileError, match="not UTF-8") as err:
        rows(path)
    assert err.value.line == 3
    assert "CSV UTF-8" in str(err.value)


def test_utf16_without_bom_is_rejected(write: Write) -> None:
    path = write("a.csv", raw="Name,Domains\n".encode("utf-16-le"))
    with pytest.raises(ImportFileError, match="NUL"):
        rows(path)


def test_missing_required_column_is_named(write: Write) -> None:
    path = write("a.csv", "Title,Domains\nAcme,acme.com\n")
    with pytest.raises(ImportFileError, match="missing column 'Name'") as err:
        rows(path, required=("Name",))
    assert err.value.line == 1


def test_any_of_columns(write: Write) -> None:
    path = write("a.csv", "Domains,Other\nacme.com,x\n")
    with pytest.raises(ImportFileError, match="at least one of the columns 'Name'"):
        rows(path, any_of=("Name",))


def test_missing_optional_column_reads_as_empty(write: Write) -> None:
    assert rows(write("a.csv", "Name\nAcme\n")) == [(2, {"Name": "Acme", "Domains": ""})]


def test_duplicate_column_is_rejected(write: Write) -> None:
    path = write("a.csv", "Name,Domains,name\n")
    with pytest.raises(ImportFileError, match="'Name' appears twice"):
        rows(path)


def test_empty_file_and_header_only(write: Write) -> None:
    with pytest.raises(ImportFileError, match="empty"):
        rows(write("a.csv", "\n\n"))
    assert rows(write("b.csv", "Name,Domains\n")) == []


def test_too_many_fields_is_an_error_but_trailing_empty_cells_are_not(write: Write) -> None:
    assert rows(write("a.csv", "Name,Domains\nAcme,acme.com,,\n"))[0][0] == 2
    with pytest.raises(ImportFileError, match="3 fields but the header has 2") as err:
        rows(write("b.csv", "Name,Domains\nAcme,acme.com\nAcme, Inc,acme.com\n"))
    assert err.value.line == 3


def test_unclosed_quote_reports_the_row_start(write: Write) -> None:
    path = write("a.csv", 'Name,Domains\nAcme,acme.com\n"Globex,globex.com\nInitech,initech.com\n')
    with pytest.raises(ImportFileError, match="malformed CSV") as err:
        rows(path)
    assert err.value.line == 3


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="cannot read"):
        rows(tmp_path / "nope.csv")


def test_at_line_and_seen_rows() -> None:
    seen = SeenRows("account")
    seen.add(["acme"], "line 2")
    with pytest.raises(ImportFileError, match=r"^line 5: the same account as line 2") as err, at_line(5):
        seen.check(["acme"])
    assert err.value.line == 5
    with pytest.raises(ImportFileError, match=r"^card 2 \(Jane\): boom$") as err, at_line(None, "card 2 (Jane)"):
        raise ValueError("boom")
    assert err.value.line is None

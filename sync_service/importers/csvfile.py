"""Reading an import CSV: decoding, the header, rows with their physical line numbers.

Encodings: UTF-8 with or without a BOM (``utf-8-sig``), and UTF-16 / UTF-32 with a BOM (Outlook's
"Unicode" export). Anything else — a legacy code page such as Windows-1252 — is rejected with the line of the
first undecodable byte rather than guessed at.

Delimiter: a comma; a header line without a comma but with a tab (Unicode text exports) or a semicolon
(spreadsheets in locales with a decimal comma) selects that delimiter instead.

Header: each column is matched case-insensitively; ``headers`` adds other programs' spellings (contacts) and
rejects a misspelt column of a fixed-format file (accounts, leads, opportunities).

Line numbers are physical lines of the file: the header is line 1 and a row whose quoted cell spans several
lines is reported at the line it starts on. Empty lines (or rows whose cells are all empty) are skipped.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from sync_service.errors import ImportFileError
from sync_service.importers.headers import lookalike, take_aliases

Row = dict[str, str]
# Characters that break a line (str.splitlines) or a terminal: escaped in rejection reasons.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class _Reader(Protocol):
    """What we use of ``csv.reader``: records and the count of physical lines read so far."""

    @property
    def line_num(self) -> int: ...

    def __next__(self) -> list[str]: ...

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16: its BOM starts with the UTF-16 LE one
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def read_text(path: Path) -> str:
    """The file's text; ``ImportFileError`` when it cannot be read or is not UTF-8 / UTF-16 with a BOM."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return decode(raw)


def decode(raw: bytes) -> str:
    encoding = next((enc for bom, enc in _BOMS if raw.startswith(bom)), "utf-8-sig")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1 if encoding == "utf-8-sig" else None
        raise ImportFileError(
            f"the file is not {encoding.removesuffix('-sig').upper()} text (undecodable byte "
            f"0x{raw[exc.start]:02x}); save it as 'CSV UTF-8'",
            line,
        ) from exc
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ImportFileError("the file contains NUL characters (UTF-16 without a byte-order mark?)", line)
    return text


class CsvRows:
    """``(line, row)`` for every non-empty row (an iterator); the header's line, the columns it has and the
    header cells no column took (ignored)."""

    def __init__(
        self, rows: Iterator[tuple[int, Row]], header_line: int, present: frozenset[str], ignored: tuple[str, ...]
    ) -> None:
        self._rows = rows
        self.header_line = header_line
        self.present = present
        self.ignored = ignored

    def __iter__(self) -> CsvRows:
        return self

    def __next__(self) -> tuple[int, Row]:
        return next(self._rows)


def iter_rows(
    path: Path,
    columns: Sequence[str],
    *,
    required: Sequence[str] = (),
    any_of: Sequence[str] = (),
    aliases: Mapping[str, Sequence[str]] | None = None,
    lookalikes: bool = False,
) -> CsvRows:
    """Check the header now, then yield ``(line, row)`` for every non-empty row.

    ``row`` maps each of ``columns`` (matched case-insensitively, given in the spelling of ``columns``) to
    its whitespace-stripped cell, ``""`` when the column or the cell is missing. Other columns are ignored
    (``CsvRows.ignored`` names them). ``aliases``: other spellings read as a column the header lacks.
    ``lookalikes``: an unknown column that resembles one the header lacks rejects the file (``headers``).
    ``required`` columns must all be in the header, and at least one of ``any_of`` when given.
    """
    text = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text), strict=True)
    header_line, header = _read_header(reader)
    positions, unknown = _column_positions(header, header_line, columns)
    unknown = take_aliases(unknown, positions, aliases or {})
    ignored = tuple(one_line(cell) for _, cell in unknown)
    _check_columns(positions, header, header_line, required, any_of, ignored if lookalikes else ())
    if lookalikes:
        _check_lookalikes(ignored, positions, header_line, columns)
    rows = _rows(reader, len(header), [(name, positions.get(name)) for name in columns])
    return CsvRows(rows, header_line, frozenset(positions), ignored)


def _delimiter(text: str) -> str:
    first = text.lstrip("\r\n").split("\n", 1)[0]
    if "," in first:
        return ","
    if "\t" in first:
        return "\t"
    return ";" if ";" in first else ","


def _next_record(reader: _Reader, line_before: int) -> list[str] | None:
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as exc:
        raise ImportFileError(f"malformed CSV ({exc}; an unclosed or stray quote?)", line_before + 1) from exc


def _read_header(reader: _Reader) -> tuple[int, list[str]]:
    while True:
        before = reader.line_num
        record = _next_record(reader, before)
        if record is None:
            raise ImportFileError("the file is empty: a header row is required", 1)
        if any(cell.strip() for cell in record):
            return before + 1, [cell.strip() for cell in record]


def _column_positions(
    header: list[str], line: int, columns: Sequence[str]
) -> tuple[dict[str, int], list[tuple[int, str]]]:
    """Each column's position in ``header``, and the non-empty cells that are no column (with their position)."""
    wanted = {name.casefold(): name for name in columns}
    positions: dict[str, int] = {}
    unknown: list[tuple[int, str]] = []
    for index, cell in enumerate(header):
        name = wanted.get(cell.casefold())
        if name is None:
            if cell:
                unknown.append((index, cell))
            continue
        if name in positions:
            raise ImportFileError(f"column '{name}' appears twice in the header", line)
        positions[name] = index
    return positions, unknown


def _check_lookalikes(unknown: Sequence[str], positions: dict[str, int], line: int, columns: Sequence[str]) -> None:
    found = lookalike(unknown, [name for name in columns if name not in positions])
    if found is not None:
        cell, meant = found
        raise ImportFileError(
            one_line(f"unknown column '{cell}' — did you mean '{meant}'? (the columns are: {', '.join(columns)})"),
            line,
        )


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped (``\\n``, ``\\x1b``).

    Rejection reasons quote cells, and a quoted cell may span lines: the reason must stay one line (the CLI
    prints the first line only, SPEC §5)."""
    return _CONTROL.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"), text)


def _check_columns(
    positions: dict[str, int],
    header: list[str],
    line: int,
    required: Sequence[str],
    any_of: Sequence[str],
    unknown: Sequence[str] = (),
) -> None:
    """``unknown``: header cells no column took, checked for a misspelling of a missing required column."""
    shown = one_line(", ".join(cell for cell in header if cell)) or "nothing"
    for name in required:
        if name not in positions:
            found = lookalike(unknown, [name])
            hint = f" — is '{found[0]}' meant to be '{name}'?" if found else ""
            raise ImportFileError(f"missing column '{name}' (the header has: {shown}){hint}", line)
    if any_of and not any(name in positions for name in any_of):
        raise ImportFileError(
            f"the header needs at least one of the columns {', '.join(repr(n) for n in any_of)} "
            f"(it has: {shown})",
            line,
        )


def _rows(reader: _Reader, width: int, columns: list[tuple[str, int | None]]) -> Iterator[tuple[int, Row]]:
    while True:
        before = reader.line_num
        record = _next_record(reader, before)
        if record is None:
            return
        line = before + 1
        cells = [cell.strip() for cell in record]
        if not any(cells):
            continue
        if len(cells) > width and any(cells[width:]):
            raise ImportFileError(
                f"{len(cells)} fields but the header has {width} columns (an unquoted comma in a value?)",
                line,
            )
        yield line, {name: _cell(cells, index) for name, index in columns}


def _cell(cells: list[str], index: int | None) -> str:
    return cells[index] if index is not None and index < len(cells) else ""


@contextmanager
def at_line(line: int | None, where: str = "") -> Iterator[None]:
    """Turn a ``ValueError`` raised while checking one row into ``ImportFileError`` at that row.

    ``where`` (e.g. ``"card 3"``) prefixes the message when there is no line number (vCards).
    """
    try:
        yield
    except ValueError as exc:
        message = f"{where}: {exc}" if where and line is None else str(exc)
        raise ImportFileError(one_line(message), line) from exc


class SeenRows:
    """Identity keys of the rows checked so far, to reject a second row for the same record.

    ``check`` and ``add`` take different key sets so that an importer can make some keys conflict in one
    direction only (a row without an email clashes with any row of the same name, not vice versa).
    """

    def __init__(self, what: str) -> None:
        self._what = what
        self._seen: dict[str, str] = {}

    def check(self, keys: Iterable[str]) -> None:
        for key in keys:
            if key in self._seen:
                raise ValueError(f"the same {self._what} as {self._seen[key]} (one row per {self._what})")

    def add(self, keys: Iterable[str], where: str) -> None:
        for key in keys:
            self._seen.setdefault(key, where)

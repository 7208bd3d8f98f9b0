"""Fuzzing the CSV (and vCard) importers with hypothesis (SPEC §5, §6).

Whatever the bytes — plausible rows with odd values, garbled quoting, stray delimiters, control characters,
other encodings, random byte edits — an import either succeeds or raises ``ImportFileError``: the file is
rejected whole with a one-line reason and the physical line number, and nothing of it is in the database.
Any other exception is a crash. An import that succeeds is idempotent: the same file again changes nothing.

Each example runs against its own copy of a seeded database (a CRM with accounts, contacts, a lead and
opportunities), so rows can match, update and conflict with existing records.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import shutil
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_store.db import make_engine, session_factory, transaction
from crm_store.migrate import upgrade
from crm_store.seed import seed_defaults
from sync_service.errors import ImportFileError, ParseError
from sync_service.importers import accounts, contacts, leads, opportunities
from sync_service.importers.report import ImportReport
from sync_service.parsing.vcard import parse_vcards
from tests.conftest import CliResult
from tests.importers.conftest import COUNTED
from tests.support.builders import REP, seed_crm

pytestmark = pytest.mark.reliability

Importer = Callable[[Session, Path], ImportReport]
IMPORTERS: dict[str, tuple[Importer, tuple[str, ...]]] = {
    "accounts": (accounts.import_accounts, accounts.COLUMNS),
    "contacts": (contacts.import_contacts, (*contacts.COLUMNS, "Notes")),
    "leads": (leads.import_leads, leads.COLUMNS),
    "opportunities": (opportunities.import_opportunities, opportunities.COLUMNS),
}
EXAMPLES = int(os.environ.get("CRM_FUZZ_EXAMPLES", "80"))  # more for a deeper run
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VCARDS = Path(__file__).resolve().parents[1] / "data" / "contacts"

# Values that mean something to some column (so rows get past the first checks and reach deeper code), odd
# variants of them, and arbitrary text.
_MEANINGFUL = st.sampled_from([
    "ACME", "acme", "Globex", "Initrode", "Rockets", "Domes", "Wile Coyote", "Rita Lead", REP,
    "ALICE@northwind-sales.example",
    "wile@acme.example", "hank@globex.example", "pal@gmail.com", "new@acme.example", "x@y", "@", "a@b@c", "<a@b.c>",
    "Jane (jane@acme.example)", "/o=ExchangeLabs/ou=Exchange/cn=Recipients/cn=jane", "acme.example; globex.example",
    "https://www.Acme.example/", "@globex.example", "xn--bcher-kva.example", "bücher.example", "ex..ample", ".", ";;",
    "customer", "prospect", "CUSTOMER", "partner", "Initial Lead", "Prospect", "Bad Lead", "Awaiting sale", "Expo",
    "Presentation", "needs analysis", "Closed won", "closed lost", "Contracting", "Nowhere",
    "1,200.50", "1.200,50", "1e309", "NaN", "-5", "Infinity", "٣٤٥", "12%", "$100", "0", "99999999999999999999999",
    "2026-06-30", "31.12.2025", "12/31/2025", "2026-02-30", "0000-00-00", "9999-12-31", "10000-01-01", "yesterday",
    "+1 555 0100", "+44 20 7946 0958", "555-0100", "tel:+15550100", "+999999999999999999", "ext. 12", "+",
])  # fmt: skip
_CELL = st.one_of(
    _MEANINGFUL,
    st.text(max_size=40),
    st.text(alphabet=',;"\t\r\n \\\x00\x0b\x1f\u2028', max_size=8),
    st.from_regex(r"[A-Za-z.@]{1,6}[\r\n\t\x0b\x1b][A-Za-z.@]{1,6}", fullmatch=True),  # a quoted multi-line cell
)


# Good values per column: files made mostly of them are accepted, so the write path is fuzzed too.
_GOOD = {
    "Name": ["ACME", "Newco", "Rita Lead", "Zed Lead"], "Type": ["customer", "prospect"],
    "Domains": ["acme.example", "newco.example", "zed.example; zed2.example"], "Territory": ["EMEA", "West"],
    "Owner": [REP, "carol@northwind-sales.example"], "Company": ["ACME", "Initrode", "Newco"],
    "Email": ["rita@initrode.example", "zed@newco.example"], "Phone": ["+1 555 0100", "+44 20 7946 0958"],
    "Status": ["Initial Lead", "Prospect"], "Source": ["Expo", "Referral"], "Title": ["Rockets", "New deal"],
    "Account": ["ACME", "Globex"], "Stage": ["Presentation", "Qualification"], "Contacts": ["wile@acme.example"],
    "Amount": ["1200.50", "99"], "Close Date": ["2026-06-30"], "First Name": ["Jane", "Wile"],
    "Last Name": ["Doe", "Coyote"], "E-mail Address": ["jane@acme.example", "wile@acme.example"],
    "Job Title": ["CTO"], "Mobile Phone": ["+1 555 0199"],
}  # fmt: skip


@st.composite
def csv_files(draw: st.DrawFn, columns: tuple[str, ...]) -> bytes:
    """A CSV import file: a header of known (in any case and order, some missing, some twice) and unknown
    columns, rows of good or odd cells written properly or joined raw, an encoding, and maybe random byte
    edits. A third of the files are made of good rows only, with the whole header; a third are the same with
    one odd cell (rejected deep in the validation, or accepted)."""
    mode = draw(st.sampled_from(["good", "one odd cell", "garbled"]))
    good = mode != "garbled"
    if good:
        header = list(columns)
    else:
        header = draw(st.lists(st.sampled_from(columns), min_size=1, max_size=len(columns) + 1))
        header = [draw(st.sampled_from([h, h.upper(), h.lower(), f" {h} "])) for h in header]
        header += draw(st.lists(st.text(max_size=10), max_size=2))

    def cell(column: str) -> st.SearchStrategy[str]:
        choices = st.sampled_from([*_GOOD.get(column, []), ""])
        return choices if good else st.one_of(choices, _CELL)

    rows = [
        [draw(cell(column)) for column in header + draw(st.lists(st.just(""), max_size=2))]
        for _ in range(draw(st.integers(0, 6)))
    ]
    if mode == "one odd cell" and rows:
        row = draw(st.sampled_from(rows))
        row[draw(st.integers(0, len(row) - 1))] = draw(_CELL)
    delimiter = draw(st.sampled_from([",", ",", ";", "\t"]))
    if good or draw(st.booleans()):
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=delimiter, lineterminator=draw(st.sampled_from(["\r\n", "\n"]))).writerows(
            [header, *rows]
        )
        text = buffer.getvalue()
    else:  # no quoting at all: stray quotes, delimiters and line breaks inside cells garble the structure
        text = "\n".join(delimiter.join(r) for r in [header, *rows])
    encodings = ["utf-8", "utf-8-sig", "utf-16"] if good else ["utf-8", "utf-8-sig", "utf-16", "cp1252", "utf-16-le"]
    encoding = draw(st.sampled_from(encodings))
    data = text.encode(encoding, errors="replace")
    for _ in range(0 if good else draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=4)) + data[at + draw(st.integers(0, 4)) :]
    return data


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database with the default lookups and the test CRM, copied for every example."""
    path = tmp_path_factory.mktemp("fuzz-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with transaction(session_factory(engine)) as session:
        seed_defaults(session)
        seed_crm(session)
    engine.dispose()
    return path


def _counts(session: Session) -> dict[str, int]:
    return {m.__tablename__: session.scalar(select(func.count()).select_from(m)) or 0 for m in COUNTED}


class Sandbox:
    """A fresh copy of the template database per example; ``attempt`` imports a file as ``crm-sync import``
    does (one transaction, rolled back on error) and checks the contract."""

    def __init__(self, template: Path, directory: Path, numbered: bool = True) -> None:
        self.template, self.directory = template, directory
        self.numbered = numbered  # CSV: every rejection names a line; vCard: it names the card instead

    def attempt(self, importer: Importer, name: str, data: bytes) -> ImportReport | None:
        path = self.directory / name
        path.write_bytes(data)
        database = self.directory / "fuzz.db"
        shutil.copyfile(self.template, database)
        engine = make_engine(f"sqlite:///{database}")
        try:
            factory = session_factory(engine)
            with factory() as session:
                before = _counts(session)
            try:
                with transaction(factory) as session:
                    report = importer(session, path)
            except ImportFileError as error:
                self._check_rejection(error, data)
                with factory() as session:
                    assert _counts(session) == before, f"a rejected file left rows behind: {error}"
                return None
            with transaction(factory) as session:
                again = importer(session, path)
            assert (again.created, again.updated) == (0, 0), f"importing the same file twice changed {again}"
            assert again.total == report.total
            return report
        finally:
            engine.dispose()

    def _check_rejection(self, error: ImportFileError, data: bytes) -> None:
        message = str(error)
        controls = [c for c in message if unicodedata.category(c) == "Cc"]
        assert len(message.splitlines()) == 1 and not controls, f"not one line of text: {message!r}"
        if not self.numbered:
            return
        wide = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))  # no line number for bad UTF-16
        if error.line is None:
            assert wide, f"no line number: {message!r}"
            return
        lines = data.count(b"\n") + data.count(b"\r") + 1  # physical lines, whatever the line breaks
        assert 1 <= error.line <= max(lines, 1), f"line {error.line} of a {lines}-line file: {message!r}"
        assert message.startswith(f"line {error.line}: ")


@pytest.mark.parametrize("kind", sorted(IMPORTERS))
def test_any_csv_is_imported_or_rejected_whole_with_a_line_and_a_reason(
    kind: str, template: Path, tmp_path: Path
) -> None:
    importer, columns = IMPORTERS[kind]
    sandbox = Sandbox(template, tmp_path)
    outcomes: list[bool] = []

    @FUZZ
    @given(csv_files(columns))
    def check(data: bytes) -> None:
        outcomes.append(sandbox.attempt(importer, f"{kind}.csv", data) is not None)

    check()
    assert any(outcomes) and not all(outcomes), "the fuzzer should produce both accepted and rejected files"


@st.composite
def mutated_vcards(draw: st.DrawFn) -> bytes:
    raw = (VCARDS / draw(st.sampled_from(sorted(p.name for p in VCARDS.glob("*.vcf"))))).read_bytes()
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(raw)))
        insert = draw(st.one_of(st.binary(max_size=6), st.sampled_from([b":", b";", b"\r\n", b"=", b"BEGIN:VCARD"])))
        raw = raw[:at] + insert + raw[at + draw(st.integers(0, 12)) :]
    return raw


@FUZZ
@given(mutated_vcards())
def test_mutated_vcards_parse_or_raise_parse_error_with_one_line_problems(raw: bytes) -> None:
    try:
        cards, problems = parse_vcards(raw)
    except ParseError as error:
        assert len(str(error).splitlines()) == 1, str(error)
        return
    assert cards
    assert all(p.startswith("card ") and len(p.splitlines()) == 1 for p in problems), problems


def test_vcard_files_are_imported_or_rejected_whole(template: Path, tmp_path: Path) -> None:
    sandbox = Sandbox(template, tmp_path, numbered=False)

    @FUZZ
    @given(mutated_vcards())
    def check(raw: bytes) -> None:
        sandbox.attempt(contacts.import_contacts, "contacts.vcf", raw)

    check()


@pytest.mark.parametrize(
    ("kind", "text", "reason"),
    [
        (
            "accounts",
            'Name,Type\nAcme,"cust\nomer"\n',
            "line 2: Type must be 'customer' or 'prospect', not 'cust\\nomer'",
        ),
        (
            "accounts",
            'Domains,"Na\r\nme"\nacme.example,x\n',
            "line 1: missing column 'Name' (the header has: Domains, Na\\r\\nme)",
        ),
        ("opportunities", 'Title,Account\nX,"Ac\x1bme"\n', "line 2: unknown account 'Ac\\x1bme'"),
    ],
)
def test_a_rejection_quoting_a_multi_line_cell_is_one_line(
    cli: Callable[..., CliResult], tmp_path: Path, kind: str, text: str, reason: str
) -> None:
    """Found by the fuzzer: the reason quoted the cell's line break, and the CLI printed only its first line."""
    assert cli("init").code == 0
    path = tmp_path / f"{kind}.csv"
    path.write_bytes(text.encode())
    result = cli("import", kind, str(path))
    assert result.code == 1
    [line] = result.err.splitlines()
    assert line.startswith(f"crm-sync: error: {reason}")


def test_a_leads_file_that_renames_a_lead_can_be_imported_twice(template: Path, tmp_path: Path) -> None:
    """Found by the fuzzer: row 3 renames the stored lead of rita@initrode.example to the name of the new lead
    of row 2; importing the file again matched row 2 to the renamed lead and rejected the file as "the same
    lead as line 2". Each row must find its own lead again."""
    data = (
        b"Name,Company,Email,Phone\r\n"
        b"ACME,Initrode,,+1 555 0100\r\n"
        b"ACME,,rita@initrode.example,+1 555 0100\r\n"
    )
    report = Sandbox(template, tmp_path).attempt(leads.import_leads, "leads.csv", data)  # imports it twice
    assert report is not None and (report.created, report.updated) == (1, 1)

"""Contacts from an Outlook CSV export or a vCard 3/4 file (SPEC §5), chosen by the file's extension.

Outlook CSV: the columns below are read, every other column is ignored. Where the header lacks one of them,
another program's spelling of it is read instead (``ALIASES``: Google Contacts' ``E-mail 1 - Value`` and
``Given Name``, a spreadsheet's ``Email`` or ``Email Address``…; spaces, hyphens and case do not matter), and a
``Name`` / ``Full Name`` column gives the name of a row without First / Middle / Last Name. The header needs an
e-mail or a name column; one that has no e-mail column but a column that speaks of mail (``E-mail Adress``) is
rejected: its addresses would be lost without a word. Each row needs a name or an email. Email cells may hold
``Name (addr)``, ``<addr>`` or an Exchange X.500 address (skipped: it has no SMTP address). An e-mail or
phone cell may hold several values joined by ``:::`` (Google Contacts writes ``a@x.com ::: b@y.com`` for two
addresses of one label): they are read as if each further value had a column of its own after the others
(``_cell_values``). Other cells are taken as written: a ``:::`` in a company or a job title (Google's several
organisations) has no single right reading. Contacts get ``source="import"``.

vCard: parsed by ``sync_service.parsing.vcard``; a file with a broken card is rejected whole (SPEC §5), the
message naming the card. Contacts get ``source="import"``, as from a CSV file.

How a row becomes a contact (account, identity, updates) is in ``contact_store``.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from pathlib import Path

from sqlalchemy.orm import Session

from crm_store.models import Contact
from sync_service.errors import ImportFileError, ParseError
from sync_service.importers.columns import fit
from sync_service.importers.contact_store import ContactEntry, store_contacts
from sync_service.importers.csvfile import CsvRows, Row, at_line, decode, iter_rows, one_line
from sync_service.importers.headers import normalised
from sync_service.importers.normalize import (
    Phone,
    clean_text,
    email_address,
    outlook_email,
    phone,
    split_list,
    unique_phones,
)
from sync_service.importers.report import ImportReport
from sync_service.parsing.vcard import parse_vcards
from sync_service.values import ContactCard

NAME_COLUMNS = ("First Name", "Middle Name", "Last Name")
EMAIL_COLUMNS = ("E-mail Address", "E-mail 2 Address", "E-mail 3 Address")
# Outlook phone columns → the phone kind (the vCard parser's words: work, cell, home, main, fax, other…).
PHONE_COLUMNS = {
    "Business Phone": "work",
    "Business Phone 2": "work",
    "Mobile Phone": "cell",
    "Home Phone": "home",
    "Home Phone 2": "home",
    "Primary Phone": "main",
    "Company Main Phone": "main",
    "Other Phone": "other",
    "Assistant's Phone": "assistant",
    "Car Phone": "car",
    "Callback": "other",
    "Business Fax": "fax",
    "Home Fax": "fax",
}
FULL_NAME = "Name"  # not Outlook's: a file from elsewhere may have the whole name in one column
COLUMNS = (*NAME_COLUMNS, FULL_NAME, "Company", "Job Title", *EMAIL_COLUMNS, *PHONE_COLUMNS)
# Other programs' names for a column, read when the header lacks the column itself (compared normalised:
# ``headers.normalised``, so "E-mail", "Email" and "Email Address" are one spelling, "FirstName" is "First Name").
# Google Contacts exports "E-mail 1 - Value", "Phone 1 - Value", "Organization Name" (older: "Given Name",
# "Family Name", "Organization 1 - Name").
ALIASES: dict[str, tuple[str, ...]] = {
    "First Name": ("First Name", "Given Name", "Firstname", "Forename"),
    "Middle Name": ("Middle Name", "Additional Name"),
    "Last Name": ("Last Name", "Family Name", "Surname", "Lastname"),
    FULL_NAME: ("Full Name", "Display Name", "Contact Name"),
    "Company": ("Company", "Company Name", "Organization", "Organisation", "Organization 1 - Name"),
    "Job Title": ("Job Title", "Organization Title", "Organization 1 - Title", "Position"),
    "E-mail Address": ("E-mail Address", "E-mail 1 - Value", "Email 1", "Primary Email", "Email 1 Address"),
    "E-mail 2 Address": ("E-mail 2 Address", "E-mail 2 - Value", "Email 2"),
    "E-mail 3 Address": ("E-mail 3 Address", "E-mail 3 - Value", "Email 3"),
    "Business Phone": ("Business Phone", "Work Phone", "Office Phone"),
    "Mobile Phone": ("Mobile Phone", "Mobile", "Cell Phone", "Cell", "Mobile Number"),
    "Home Phone": ("Home Phone",),
    "Primary Phone": ("Primary Phone", "Phone", "Telephone", "Phone 1 - Value"),
    "Other Phone": ("Other Phone", "Phone 2 - Value", "Phone 3 - Value"),
}
VCARD_SUFFIXES = (".vcf", ".vcard")
# Google Contacts joins several values of one label in one cell: "ann@acme.com ::: ann@home.example". A ":::"
# is in no e-mail address (no ":" before or after the @) and in no phone number, so splitting on it is safe.
MULTI_VALUE = ":::"
# What the length checks call each field (``_fits``), in a CSV file and in a vCard.
# The parts of a name first: a First Name too long says so, not that the name joined from it is.
CSV_LABELS = {"first_name": "First Name", "middle_name": "Middle Name", "last_name": "Last Name", "name": "Name",
              "company": "Company", "job_title": "Job Title"}  # fmt: skip
VCARD_LABELS = {"first_name": "N given name", "middle_name": "N additional name", "last_name": "N family name",
                "name": "FN (the name)", "company": "ORG", "job_title": "TITLE"}  # fmt: skip


def import_contacts(session: Session, path: Path, *, default_region: str = "US") -> ImportReport:
    """Import ``path`` (``.csv`` Outlook export or ``.vcf`` vCard). The caller commits or rolls back.

    ``default_region`` is the country assumed for phone numbers written without ``+`` (E.164).
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return store_contacts(session, list(_csv_entries(path, default_region)), source="import")
    if suffix in VCARD_SUFFIXES:
        return store_contacts(session, _vcard_entries(path, default_region), source="import")
    raise ImportFileError(
        f"cannot import contacts from '{path.name}': expected an Outlook CSV export (.csv) or a vCard file "
        "(.vcf)"
    )


def _csv_entries(path: Path, region: str) -> Iterator[ContactEntry]:
    found = iter_rows(path, COLUMNS, any_of=(*EMAIL_COLUMNS, *NAME_COLUMNS, FULL_NAME), aliases=ALIASES)
    _check_mail_column(found)
    for line, cells in found:
        with at_line(line):
            yield _csv_entry(line, cells, region)


def _check_mail_column(found: CsvRows) -> None:
    """A header without an e-mail column the importer reads must not have one it cannot read (a typo, another
    program's name for it): every address would be dropped."""
    if found.present.intersection(EMAIL_COLUMNS):
        return
    mail = [cell for cell in found.ignored if "mail" in normalised(cell)]
    if mail:
        raise ImportFileError(
            f"no e-mail column this importer reads, but a column '{mail[0]}': name it '{EMAIL_COLUMNS[0]}' "
            f"(or '{EMAIL_COLUMNS[1]}', '{EMAIL_COLUMNS[2]}')",
            found.header_line,
        )


def _csv_entry(line: int, cells: Row, region: str) -> ContactEntry:
    first, middle, last = (clean_text(cells[column]) for column in NAME_COLUMNS)
    emails = []
    for column, value in _cell_values(cells, EMAIL_COLUMNS):
        try:
            address = outlook_email(value)
        except ValueError as exc:
            raise ValueError(f"{column}: {exc}") from exc
        if address:
            emails.append(address)
    phones = [phone(PHONE_COLUMNS[column], value, region) for column, value in _cell_values(cells, PHONE_COLUMNS)]
    entry = ContactEntry(
        line=line,
        where=f"line {line}",
        name=" ".join(part for part in (first, middle, last) if part) or clean_text(cells[FULL_NAME]),
        first_name=first,
        middle_name=middle,
        last_name=last,
        company=clean_text(cells["Company"]),
        job_title=clean_text(cells["Job Title"]),
        emails=tuple(dict.fromkeys(emails)),
        phones=unique_phones(phones),
    )
    if not entry.name and not entry.emails:
        raise ValueError("the row has neither a name (First / Middle / Last Name) nor an e-mail address")
    return _fits(entry, CSV_LABELS)


def _fits(entry: ContactEntry, labels: dict[str, str]) -> ContactEntry:
    """``entry`` when each field fits its ``Contact`` column; else ``ValueError`` naming the field (``columns``).

    A row without a name is named after its first address, which must then fit the name's column too."""
    for field, label in labels.items():
        fit(label, getattr(entry, field), getattr(Contact, field))
    if not entry.name and entry.emails:
        fit(f"{entry.emails[0]!r} (the name of a contact without one)", entry.emails[0], Contact.name)
    return entry


def _cell_values(cells: Row, columns: Iterable[str]) -> list[tuple[str, str]]:
    """``(column, value)`` for every non-empty value of ``columns``: first each cell's first value, in column
    order, then the further values of multi-value cells (``MULTI_VALUE``), in order.

    The further values come after the other columns' values, as if they had columns of their own after these:
    the first address stays the contact's primary one, and a contact created from the file gets its addresses
    in the order an update gives them when a value is added to a cell of a file imported before (new addresses
    go after the stored ones, ``contact_store``)."""
    split = [(column, split_list(cells[column], MULTI_VALUE)) for column in columns]
    return [(column, values[0]) for column, values in split if values] + [
        (column, value) for column, values in split for value in values[1:]
    ]


def _vcard_entries(path: Path, region: str) -> list[ContactEntry]:
    try:
        cards, problems = parse_vcards(_vcard_bytes(path))
    except ParseError as exc:
        raise ImportFileError(one_line(f"not a usable vCard file: {exc}")) from exc
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ImportFileError(one_line(f"broken vCard, nothing imported: {problems[0]}{more}"))
    entries = []
    for number, card in enumerate(cards, start=1):
        shown = card.full_name if len(card.full_name) <= 60 else f"{card.full_name[:60]}…"
        where = f"card {number} ({shown})"
        with at_line(None, where):
            entries.append(_card_entry(card, where, region))
    return entries


def _vcard_bytes(path: Path) -> bytes:
    """The file's bytes; a UTF-16 / UTF-32 file (BOM) is re-encoded as UTF-8 for the parser."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return decode(raw).encode("utf-8")
    return raw


def _card_entry(card: ContactCard, where: str, region: str) -> ContactEntry:
    phones: list[Phone] = [phone(kind, number, region) for kind, number in card.phones if number.strip()]
    entry = ContactEntry(
        line=None,
        where=where,
        name=clean_text(card.full_name),
        first_name=clean_text(card.first_name),
        middle_name=clean_text(card.middle_name),
        last_name=clean_text(card.last_name),
        company=clean_text(card.company),
        job_title=clean_text(card.job_title),
        emails=tuple(dict.fromkeys(email_address(address) for address in card.emails)),
        phones=unique_phones(phones),
    )
    return _fits(entry, VCARD_LABELS)

"""Contacts import: Outlook CSV export and vCard, account linking, identity, whole-file rejection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from crm_store.models import Contact
from sync_service.errors import ImportFileError
from sync_service.importers import import_accounts, import_contacts

Write = Callable[..., Path]
Run = Callable[..., object]

ACCOUNTS = """\
Name,Type,Domains
Acme Corp,customer,acme.com
Globex,prospect,globex.com
Bücher GmbH,prospect,bücher.de
"""

# The real Outlook export has ~90 columns; a representative slice, in Outlook's order.
HEADER = (
    '"Title","First Name","Middle Name","Last Name","Suffix","Company","Department","Job Title",'
    '"Business Phone","Business Phone 2","Mobile Phone","Home Phone","Other Phone","E-mail Address",'
    '"E-mail Type","E-mail Display Name","E-mail 2 Address","E-mail 3 Address","Notes"'
)
ROWS = [
    # Company names the account (case-insensitive); two emails, two phones
    'Dr.,Jane,Q.,Doe,,ACME CORP,Sales,CTO,(202) 555-0123,,+44 7700 900123,,,Jane.Doe@Acme.com,SMTP,'
    '"Jane Doe (jane.doe@acme.com)",jane@acme.com,,"multi\nline note"',
    # no company: account by the email's parent domain
    ",Bob,,Builder,,,,,,,,,,bob@eu.acme.com,SMTP,,,,",
    # public mail provider: no account
    ",Carol,,Jones,,,,,,,,,,carol@gmail.com,SMTP,,,,",
    # unknown company, known domain
    ",Dave,,Smith,,Dave's Garage,,,,,,,,Dave Smith <DAVE@globex.com>,SMTP,,,,",
    # no email at all: by name and company
    ",Eve,,Adams,,Acme Corp,,,,,,030 1234567,,,,,,,",
    # X.500 address skipped, the real one in E-mail 2
    ",Frank,,Kahn,,,,,,,,,,/o=ExchangeLabs/ou=Exchange/cn=Recipients/cn=frank,EX,,frank@globex.com,,",
    # IDN domain written as xn--
    ",Lars,,Müller,,,,,,,,,,lars@xn--bcher-kva.de,SMTP,,,,",
]
OUTLOOK = HEADER + "\r\n" + "\r\n".join(ROWS) + "\r\n"


def contacts(factory: sessionmaker[Session]) -> dict[str, Contact]:
    with factory() as session:
        found = session.scalars(
            select(Contact).options(selectinload(Contact.emails), selectinload(Contact.phones),
                                    selectinload(Contact.account))
        ).all()
        return {c.name: c for c in found}


@pytest.fixture
def with_accounts(write: Write, run: Run) -> None:
    run(import_accounts, write("accounts.csv", ACCOUNTS))


def account_of(contact: Contact) -> str | None:
    return contact.account.name if contact.account else None


@pytest.mark.usefixtures("with_accounts")
def test_outlook_csv(factory: sessionmaker[Session], write: Write, run: Run) -> None:
    report = run(import_contacts, write("contacts.csv", OUTLOOK))
    assert (report.created, report.updated, report.unchanged) == (7, 0, 0)  # type: ignore[attr-defined]
    found = contacts(factory)
    jane = found["Jane Q. Doe"]
    assert (jane.first_name, jane.middle_name, jane.last_name, jane.job_title) == ("Jane", "Q.", "Doe", "CTO")
    assert (jane.company, jane.source, account_of(jane)) == ("ACME CORP", "import", "Acme Corp")
    assert [e.email for e in jane.emails] == ["jane.doe@acme.com", "jane@acme.com"]
    assert [(p.kind, p.raw, p.e164) for p in jane.phones] == [
        ("work", "(202) 555-0123", "+12025550123"),
        ("cell", "+44 7700 900123", "+447700900123"),
    ]
    assert account_of(found["Bob Builder"]) == "Acme Corp"
    assert account_of(found["Carol Jones"]) is None
    assert account_of(found["Dave Smith"]) == "Globex"
    assert found["Dave Smith"].primary_email == "dave@globex.com"
    eve = found["Eve Adams"]
    assert (account_of(eve), eve.emails, [(p.kind, p.raw) for p in eve.phones]) == (
        "Acme Corp", [], [("home", "030 1234567")]
    )
    assert [e.email for e in found["Frank Kahn"].emails] == ["frank@globex.com"]
    lars = found["Lars Müller"]
    assert (lars.primary_email, account_of(lars)) == ("lars@bücher.de", "Bücher GmbH")


@pytest.mark.usefixtures("with_accounts")
def test_default_region_for_phones(factory: sessionmaker[Session], write: Write, run: Run) -> None:
    run(import_contacts, write("c.csv", HEADER + "\n" + ROWS[4] + "\n"), default_region="DE")
    assert [p.e164 for p in contacts(factory)["Eve Adams"].phones] == ["+49301234567"]


@pytest.mark.usefixtures("with_accounts")
def test_reimport_changes_nothing(write: Write, run: Run, counts: Callable[[], dict]) -> None:
    path = write("contacts.csv", OUTLOOK)
    run(import_contacts, path)
    before = counts()
    report = run(import_contacts, path)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 7)  # type: ignore[attr-defined]
    assert counts() == before


@pytest.mark.usefixtures("with_accounts")
def test_utf16_outlook_export(factory: sessionmaker[Session], write: Write, run: Run) -> None:
    text = "First Name\tLast Name\tE-mail Address\tCompany\r\nJürgen\tKlein\tjk@bücher.de\t\r\n"
    report = run(import_contacts, write("contacts.csv", text, encoding="utf-16"))
    assert report.created == 1  # type: ignore[attr-defined]
    assert account_of(contacts(factory)["Jürgen Klein"]) == "Bücher GmbH"


@pytest.mark.usefixtures("with_accounts")
def test_update_adds_emails_after_existing_ones(factory: sessionmaker[Session], write: Write, run: Run) -> None:
    run(import_contacts, write("a.csv", OUTLOOK))
    text = "First Name,Last Name,Job Title,E-mail Address,E-mail 2 Address,Mobile Phone\n" \
           "Jane,Doe,CEO,jane@acme.com,jd@acme.com,+44 7700 900123\n" \
           "Eve,Adams,,eve@acme.com,,\n"
    report = run(import_contacts, write("b.csv", text))
    assert (report.created, report.updated, report.unchanged) == (0, 2, 0)  # type: ignore[attr-defined]
    found = contacts(factory)
    jane = found["Jane Doe"]  # the new name parts replace the old ones; the middle name stays
    assert (jane.middle_name, jane.job_title) == ("Q.", "CEO")
    assert [e.email for e in jane.emails] == ["jane.doe@acme.com", "jane@acme.com", "jd@acme.com"]
    assert len(jane.phones) == 2  # the mobile was already there
    assert [e.email for e in found["Eve Adams"].emails] == ["eve@acme.com"]  # Eve had no email: same contact


@pytest.mark.parametrize(
    ("rows", "line", "reason"),
    [
        (["Jane,Doe,jane@acme.com,", ",,,Acme"], 3, "neither a name"),
        (["Jane,Doe,jane@acme.com,", "", "Bob,,bob@acme,"], 4, "E-mail Address: 'bob@acme' is not an email"),
        (["Jane,Doe,jane@acme.com,", "J.,Doe,JANE@acme.com,"], 3, "the same contact as line 2"),
        (["Eve,Adams,,Acme Corp", "Eve,Adams,eve@acme.com,"], 3, "the same contact as line 2"),
        (['"Multi\nLine",Doe,md@acme.com,', "Eve,,,", "eve,,,"], 5, "the same contact as line 4"),
    ],
)
@pytest.mark.usefixtures("with_accounts")
def test_bad_csv_is_rejected_whole(
    write: Write, run: Run, counts: Callable[[], dict], rows: list[str], line: int, reason: str
) -> None:
    before = counts()
    text = "First Name,Last Name,E-mail Address,Company\n" + "\n".join(rows) + "\n"
    with pytest.raises(ImportFileError, match=reason) as err:
        run(import_contacts, write("bad.csv", text))
    assert err.value.line == line
    assert counts() == before


def test_header_needs_email_or_name_columns(write: Write, run: Run) -> None:
    with pytest.raises(ImportFileError, match="at least one of the columns 'E-mail Address'") as err:
        run(import_contacts, write("c.csv", "Company,Job Title\nAcme,CTO\n"))
    assert err.value.line == 1


def test_unsupported_extension(write: Write, run: Run) -> None:
    with pytest.raises(ImportFileError, match=r"expected an Outlook CSV export \(\.csv\) or a vCard"):
        run(import_contacts, write("contacts.txt", "First Name\nJane\n"))


def test_addresses_of_two_contacts_in_one_row(write: Write, run: Run, counts: Callable[[], dict]) -> None:
    run(import_contacts, write("a.csv", "First Name,E-mail Address\nA,a@x.com\nB,b@x.com\n"))
    before = counts()
    with pytest.raises(ImportFileError, match="belong to 2 different contacts") as err:
        run(import_contacts, write("b.csv", "First Name,E-mail Address,E-mail 2 Address\nAB,a@x.com,b@x.com\n"))
    assert err.value.line == 2
    assert counts() == before


VCARDS = """\
BEGIN:VCARD
VERSION:3.0
N:Doe;Jane;;;
FN:Jane Doe
ORG:Acme Corp;Sales
TITLE:CTO
EMAIL;TYPE=INTERNET,WORK:Jane@Acme.com
TEL;TYPE=WORK,VOICE:(202) 555-0123
TEL;TYPE=CELL:+44 7700 900123
END:VCARD
BEGIN:VCARD
VERSION:4.0
FN:Lars Müller
N:Müller;Lars;;;
EMAIL:lars@xn--bcher-kva.de
TEL;VALUE=uri;TYPE=work:tel:+49-30-1234567
END:VCARD
BEGIN:VCARD
VERSION:3.0
FN:Carol Jones
EMAIL:carol@gmail.com
END:VCARD
"""


@pytest.mark.usefixtures("with_accounts")
def test_vcard_import(factory: sessionmaker[Session], write: Write, run: Run, counts: Callable[[], dict]) -> None:
    path = write("contacts.vcf", VCARDS.replace("\n", "\r\n"))
    report = run(import_contacts, path)
    assert (report.created, report.updated, report.unchanged) == (3, 0, 0)  # type: ignore[attr-defined]
    found = contacts(factory)
    jane = found["Jane Doe"]
    assert (jane.source, jane.company, jane.job_title, account_of(jane)) == ("import", "Acme Corp", "CTO", "Acme Corp")
    assert jane.primary_email == "jane@acme.com"
    assert [p.e164 for p in jane.phones] == ["+12025550123", "+447700900123"]
    lars = found["Lars Müller"]
    assert (lars.primary_email, account_of(lars), [p.e164 for p in lars.phones]) == (
        "lars@bücher.de", "Bücher GmbH", ["+49301234567"]
    )
    assert account_of(found["Carol Jones"]) is None
    before = counts()
    again = run(import_contacts, path)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)  # type: ignore[attr-defined]
    assert counts() == before


@pytest.mark.usefixtures("with_accounts")
def test_vcard_matches_contacts_from_csv(factory: sessionmaker[Session], write: Write, run: Run) -> None:
    run(import_contacts, write("contacts.csv", OUTLOOK))
    report = run(import_contacts, write("contacts.vcf", VCARDS))
    # Jane: the card's name and company spelling win; Lars gains a phone; Carol's card adds nothing
    assert (report.created, report.updated, report.unchanged) == (0, 2, 1)  # type: ignore[attr-defined]
    jane = contacts(factory)["Jane Doe"]
    assert jane.source == "import"  # the first source is kept
    assert [e.email for e in jane.emails] == ["jane.doe@acme.com", "jane@acme.com"]


def test_broken_vcard_file_is_rejected_whole(write: Write, run: Run, counts: Callable[[], dict]) -> None:
    broken = VCARDS.replace("END:VCARD\nBEGIN:VCARD\nVERSION:4.0", "BEGIN:VCARD\nVERSION:4.0", 1)
    before = counts()
    with pytest.raises(ImportFileError, match=r"broken vCard, nothing imported: card 1: .*END:VCARD") as err:
        run(import_contacts, write("broken.vcf", broken))
    assert err.value.line is None
    assert counts() == before


def test_vcard_with_a_bad_address_names_the_card(write: Write, run: Run, counts: Callable[[], dict]) -> None:
    bad = VCARDS.replace("EMAIL:carol@gmail.com", "EMAIL:carol at gmail")
    with pytest.raises(ImportFileError, match=r"^card 3 \(Carol Jones\): 'carol at gmail' is not an email"):
        run(import_contacts, write("bad.vcf", bad))
    assert counts()["contacts"] == 0


def test_file_without_vcards(write: Write, run: Run) -> None:
    with pytest.raises(ImportFileError, match="not a usable vCard file"):
        run(import_contacts, write("empty.vcf", "hello\n"))


def test_utf16_vcard_and_duplicate_cards(write: Write, run: Run, counts: Callable[[], dict]) -> None:
    report = run(import_contacts, write("u16.vcf", VCARDS, encoding="utf-16"))
    assert report.created == 3  # type: ignore[attr-defined]
    twice = VCARDS + VCARDS.split("END:VCARD\n")[0] + "END:VCARD\n"
    before = counts()
    with pytest.raises(ImportFileError, match=r"^card 4 \(Jane Doe\): the same contact as card 1 \(Jane Doe\)"):
        run(import_contacts, write("twice.vcf", twice))
    assert counts() == before

"""Audit 16 finding 2: an address book synced as a source (here ``vcf://``; Exchange and Graph contact folders
are turned into the same vCards) follows the auto-creation policy mail follows (SPEC §3.6, §3.1): a rep's
private gmail / yahoo cards never become CRM records, so their private mail stays unlogged; under ``all`` an
unknown company card becomes a lead, not a contact. Through the real CLI and a one-shot sync."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from crm_store.models import Lead
from sync_service.pipeline.contacts import fitted
from sync_service.values import ContactCard
from tests.support.builders import REP, maildir, message

ACCOUNTS = f"Name,Type,Domains,Territory,Owner\nAcme Corp,customer,acme.example,East,{REP}\n"


def vcard(name: str, *emails: str, org: str = "", tel: str = "") -> str:
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"FN:{name}", *(f"EMAIL:{e}" for e in emails)]
    lines += [f"ORG:{org}"] if org else []
    lines += [f"TEL;TYPE=WORK:{tel}"] if tel else []
    return "\r\n".join([*lines, "END:VCARD"]) + "\r\n"


BOOK = "".join(
    [
        vcard("My Friend", "friend@gmail.com"),
        vcard("Mom", "mom@yahoo.com", tel="+1 555 123 4567"),
        vcard("Acme Person", "person@acme.example"),
        vcard("Random Biz", "ceo@randombiz.example", org="Random Biz Ltd", tel="+1 202 555 0199"),
        vcard("Jane Mixed", "jane.private@gmail.com", "Jane@Acme.example"),
        vcard("Acme Billing", "noreply@acme.example"),
        vcard("A Colleague", "carl@northwind-sales.example"),
    ]
)


def _json(cli: Any, *args: str) -> list[dict[str, Any]]:
    result = cli(*args, "--format", "json")
    assert result.code == 0, result.err
    rows: list[dict[str, Any]] = json.loads(result.out)
    return rows


def _world(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str) -> None:
    monkeypatch.setenv("CRM_AUTO_CREATE", policy)
    assert cli("init").code == 0
    (tmp_path / "accounts.csv").write_text(ACCOUNTS)
    assert cli("import", "accounts", str(tmp_path / "accounts.csv")).code == 0


def _sync_book(cli: Any, tmp_path: Path, book: str = BOOK) -> None:
    (tmp_path / "book.vcf").write_text(book, encoding="utf-8")
    assert cli("mailbox", "add", "book", "--owner", REP, "--source", f"vcf://{tmp_path / 'book.vcf'}").code == 0
    assert cli("sync", "--once").code == 0


def _contacts(cli: Any) -> dict[str, tuple[str | None, list[str]]]:
    return {c["name"]: (c["account"], c["emails"]) for c in _json(cli, "export", "contacts")}


def test_policy_all_private_cards_stay_out_and_an_unknown_company_card_is_a_lead(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    _world(cli, tmp_path, monkeypatch, "all")
    _sync_book(cli, tmp_path)
    assert _contacts(cli) == {
        "Acme Person": ("Acme Corp", ["person@acme.example"]),
        "Jane Mixed": ("Acme Corp", ["jane.private@gmail.com", "jane@acme.example"]),  # the company address decides
    }
    assert {c["source"] for c in _json(cli, "export", "contacts")} == {"sync"}
    leads = _json(cli, "export", "leads")
    assert [(x["name"], x["company"], x["emails"], x["owner"]) for x in leads] == [
        ("Random Biz", "Random Biz Ltd", ["ceo@randombiz.example"], REP)
    ]
    engine = create_engine(database_url)
    with Session(engine) as session:
        lead = session.scalars(select(Lead)).one()
        assert lead.origin == "sync"
        assert [(p.raw, p.e164) for p in lead.phones] == [("+1 202 555 0199", "+12025550199")]
    engine.dispose()

    # Mom's private mail is not logged: she is nobody in the CRM ("private mail stays private").
    mail = maildir(
        tmp_path / "mail",
        [
            message("mom1@yahoo.com", "Mom <mom@yahoo.com>", [REP], "Sunday dinner"),
            message("ceo1@randombiz.example", "Random Biz <ceo@randombiz.example>", [REP], "Intro"),
        ],
    )
    assert cli("mailbox", "add", "mail", "--owner", REP, "--source", f"maildir://{mail}").code == 0
    assert cli("sync", "--once").code == 0
    activities = _json(cli, "export", "activities")
    assert [a["subject"] for a in activities] == ["Intro"]  # the lead's mail is logged, Mom's is not
    assert [d["filename"] for d in _json(cli, "export", "documents")] == ["Intro.eml"]  # no "Sunday dinner.eml"
    assert len(_json(cli, "export", "leads")) == 1  # the card's lead, no second one from the mail

    assert cli("sync", "--once").code == 0  # the same book again: nothing more
    assert len(_contacts(cli)) == 2 and len(_json(cli, "export", "leads")) == 1


def test_default_policy_only_cards_at_an_account_domain_become_contacts(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _world(cli, tmp_path, monkeypatch, "account-domains")
    _sync_book(cli, tmp_path)
    assert sorted(_contacts(cli)) == ["Acme Person", "Jane Mixed"]
    assert _json(cli, "export", "leads") == []


def test_policy_none_creates_nothing_from_cards_but_still_fills_a_known_contact(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _world(cli, tmp_path, monkeypatch, "none")
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("First Name,Last Name,Company,E-mail Address\nAcme,Person,,person@acme.example\n")
    assert cli("import", "contacts", str(contacts)).code == 0
    _sync_book(cli, tmp_path)
    assert _contacts(cli) == {"Acme Person": ("Acme Corp", ["person@acme.example"])}
    assert _json(cli, "export", "leads") == []

    # a known contact's card still adds what the CRM lacks, whatever the policy — a private address included
    (tmp_path / "book.vcf").write_text(vcard("Acme Person", "person@acme.example", "ap@gmail.com"))
    assert cli("sync", "--once").code == 0
    assert _contacts(cli) == {"Acme Person": ("Acme Corp", ["person@acme.example", "ap@gmail.com"])}


def test_a_card_of_a_known_lead_makes_no_contact_and_no_second_lead(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _world(cli, tmp_path, monkeypatch, "all")
    leads = tmp_path / "leads.csv"
    leads.write_text(f"Name,Company,Email,Phone,Status,Source,Owner\nLarry,Larry Inc,larry@larry.example,,,,{REP}\n")
    assert cli("import", "leads", str(leads)).code == 0
    _sync_book(cli, tmp_path, vcard("Larry Lead", "larry@larry.example", "larry@acme.example"))
    assert _contacts(cli) == {}
    assert [x["name"] for x in _json(cli, "export", "leads")] == ["Larry"]


# Audit 17a, the synced half of F7: a card's values longer than their columns are cut (as a name from mail
# is), not a PostgreSQL DataError that quarantines the whole book while SQLite stores them.
def test_fitted_cuts_texts_to_their_columns_and_drops_a_junk_phone() -> None:
    card = ContactCard(
        full_name="N" * 400, job_title="T" * 250, company="C" * 301, phones=(("work", "1" * 101), ("cell", "+1 555"))
    )
    cut = fitted(card)
    assert (len(cut.full_name), len(cut.job_title), len(cut.company)) == (300, 200, 300)
    assert cut.phones == (("cell", "+1 555"),)
    plain = ContactCard(full_name="Ann", emails=("ann@acme.example",))
    assert fitted(plain) is plain


def test_a_card_with_over_long_values_syncs_on_every_backend(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _world(cli, tmp_path, monkeypatch, "all")
    book = vcard("A" * 400, "long@acme.example") + vcard("B", "ceo@longbiz.example", org="Z" * 400)
    _sync_book(cli, tmp_path, book)
    assert _json(cli, "export", "quarantine") == []
    [contact] = _json(cli, "export", "contacts")
    assert contact["name"] == "A" * 300
    [lead] = _json(cli, "export", "leads")
    assert lead["company"] == "Z" * 300

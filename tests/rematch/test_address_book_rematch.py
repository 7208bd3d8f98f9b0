"""SPEC §3.7: an address book synced as a source (vcf://, Exchange/Graph contact folders) changes CRM contacts;
the items seen earlier are then matched again, as after an import — here through the real queue of a one-shot
sync (`sync --once` finishes all resulting work)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.builders import REP, maildir, message

CARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Hank Scorpio\r\n{emails}END:VCARD\r\n"


def _card(path: Path, *emails: str) -> None:
    path.write_text(CARD.format(emails="".join(f"EMAIL:{e}\r\n" for e in emails)), encoding="utf-8")


def _subjects(cli: Any) -> list[str]:
    return sorted(a["subject"] for a in json.loads(cli("export", "activities", "--format", "json").out))


def test_an_address_added_by_an_address_book_logs_the_earlier_mail(cli: Any, tmp_path: Path) -> None:
    assert cli("init").code == 0
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(f"Name,Type,Domains,Territory,Owner\nGlobex,customer,globex.example,West,{REP}\n")
    assert cli("import", "accounts", str(accounts)).code == 0  # the card's work address is at its domain
    book = tmp_path / "book.vcf"
    _card(book, "hank@globex.example")
    mail = maildir(tmp_path / "mail", [message("h1@gmail.com", "hank.scorpio@gmail.com", [REP], "From home")])
    assert cli("mailbox", "add", "mail", "--owner", REP, "--source", f"maildir://{mail}").code == 0
    assert cli("mailbox", "add", "book", "--owner", REP, "--source", f"vcf://{book}").code == 0
    assert cli("sync", "--once").code == 0
    assert _subjects(cli) == []  # private: nobody in the CRM has that address yet

    _card(book, "hank@globex.example", "hank.scorpio@gmail.com")
    assert cli("sync", "--once").code == 0
    assert _subjects(cli) == ["From home"]
    assert cli("sync", "--once").code == 0
    assert _subjects(cli) == ["From home"]  # nothing changed, nothing doubled

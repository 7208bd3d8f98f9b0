"""Audit 16 finding 9: mail from a no-reply / system address at a customer's domain is logged to that account,
as before, but nobody is auto-created for it; a person at the same domain still is. Through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.builders import REP, maildir, message

ACCOUNTS = f"Name,Type,Domains,Territory,Owner\nAcme Corp,customer,acme.example,East,{REP}\n"


@pytest.mark.parametrize("policy", ["account-domains", "all"])
def test_noreply_and_postmaster_mail_is_logged_to_the_account_without_a_contact(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    monkeypatch.setenv("CRM_AUTO_CREATE", policy)
    assert cli("init").code == 0
    (tmp_path / "accounts.csv").write_text(ACCOUNTS)
    assert cli("import", "accounts", str(tmp_path / "accounts.csv")).code == 0
    ndr = {"X-MS-Exchange-Message-Is-Ndr": ""}
    mail = maildir(
        tmp_path / "mail",
        [
            message("b5@acme.example", "Acme Billing <noreply@acme.example>", [REP], "Your invoice 123"),
            message("b2@acme.example", "Postmaster <postmaster@acme.example>", [REP], "Undeliverable", headers=ndr),
            message("b8@newco.example", "Newco <no_reply+x1@newco.example>", [REP], "Welcome to Newco"),
            message("n1@acme.example", "Nina New <nina@acme.example>", [REP], "Hello"),
        ],
    )
    assert cli("mailbox", "add", "mail", "--owner", REP, "--source", f"maildir://{mail}").code == 0
    assert cli("sync", "--once").code == 0

    activities = json.loads(cli("export", "activities", "--format", "json").out)
    assert sorted((a["subject"], a["account"]) for a in activities) == [
        ("Hello", "Acme Corp"),
        ("Undeliverable", "Acme Corp"),
        ("Your invoice 123", "Acme Corp"),
    ]  # Newco's no-reply mail: nobody to link it to and nobody to create (a lead under `all`)
    contacts = json.loads(cli("export", "contacts", "--format", "json").out)
    assert [(c["name"], c["emails"]) for c in contacts] == [("Nina New", ["nina@acme.example"])]
    assert json.loads(cli("export", "leads", "--format", "json").out) == []

"""Mail values PostgreSQL refuses while SQLite stores them (audit 17a F1, mail half; F10, F11): a NUL in a
Message-ID or References, a 10,000-character Message-ID, a 5,000-character display name, a 1,200-character
address, malformed ids with brackets inside, an impossible Date. Each message is logged the same on both
backends, none is quarantined; and when an item does fail, its reason is one line without SQL or data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import DataError

from sync_service.pipeline import process
from tests.support.builders import REP, maildir

ACCOUNTS = "Name,Type,Domains,Territory,Owner\nACME,customer,acme.example,West,{rep}\n"
CONTACTS = "First Name,Last Name,Company,E-mail Address\nBob,Buyer,ACME,bob@acme.example\n"
LONG_ID = "m" * 10_000 + "@acme.example"
LONG_DOMAIN = ".".join(["sub" * 20] * 20) + ".acme.example"


def _raw(*lines: str, subject: str) -> bytes:
    head = [f"To: {REP}", f"Subject: {subject}", *lines]
    if not any(line.startswith("Date:") for line in lines):
        head.append("Date: Mon, 23 Nov 2026 10:00:00 +0000")
    if not any(line.startswith("From:") for line in lines):
        head.append("From: Bob <bob@acme.example>")
    return ("\r\n".join(head) + "\r\n\r\nbody\r\n").encode("utf-8")


def _json(cli: Any, *args: str) -> Any:
    result = cli(*args, "--format", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def _setup(cli: Any, tmp_path: Path, messages: list[bytes]) -> None:
    assert cli("init").code == 0
    (tmp_path / "accounts.csv").write_text(ACCOUNTS.format(rep=REP), encoding="utf-8")
    (tmp_path / "contacts.csv").write_text(CONTACTS, encoding="utf-8")
    assert cli("import", "accounts", str(tmp_path / "accounts.csv")).code == 0
    assert cli("import", "contacts", str(tmp_path / "contacts.csv")).code == 0
    box = maildir(tmp_path / "mail", messages)
    assert cli("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{box}").code == 0


def test_hostile_mail_values_are_logged_alike_on_both_backends(cli: Any, tmp_path: Path) -> None:
    _setup(
        cli,
        tmp_path,
        [
            _raw("Message-ID: <nul\x00mid@acme.example>", subject="nul id"),
            _raw(f"Message-ID: <{LONG_ID}>", subject="long id"),
            _raw(f"Message-ID: <{LONG_ID}>", "X-Copy: second", subject="long id"),  # the same message again
            _raw("Message-ID: <refs@acme.example>", "References: <r\x00ef@acme.example>", subject="nul refs"),
            _raw(
                "Message-ID: <longname@acme.example>", f'From: "{"N" * 5000}" <nina@acme.example>', subject="long name"
            ),
            _raw("Message-ID: <longaddr@acme.example>", f"Cc: Zed <zed@{LONG_DOMAIN}>", subject="long address"),
            _raw("Message-ID: <quote-2026-11<script>@acme.example>", subject="Quote for Acme (first message)"),
            _raw("Message-ID: <order-77<script>@acme.example>", subject="Order 77 (a different message)"),
            _raw(
                "Message-ID: <year1@acme.example>",
                "Date: Mon, 1 Jan 0001 00:00:00 +0000",
                "Received: from mx by mx; Tue, 24 Nov 2026 10:00:00 +0100",
                subject="year one",
            ),
        ],
    )
    synced = cli("sync", "--once")
    assert synced.code == 0, synced.err
    assert _json(cli, "export", "quarantine") == []
    activities = {a["subject"]: a for a in _json(cli, "export", "activities")}
    assert sorted(activities) == sorted(
        ["nul id", "long id", "nul refs", "long name", "long address", "Quote for Acme (first message)",
         "Order 77 (a different message)", "year one"]
    )  # fmt: skip
    assert activities["nul id"]["message_id"] == "nulmid@acme.example"
    assert activities["long id"]["message_id"].startswith("sha256:")
    assert activities["Order 77 (a different message)"]["message_id"] == "order-77<script>@acme.example"
    assert activities["year one"]["start"] == "2026-11-24T09:00:00Z"
    contacts = {c["emails"][0]: c for c in _json(cli, "export", "contacts")}
    assert contacts["nina@acme.example"]["name"] == "N" * 300
    assert not any("zed@" in email for email in contacts)


@pytest.mark.parametrize("failure", ["data", "plain"])
def test_an_internal_error_is_quarantined_with_a_one_line_reason(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    _setup(cli, tmp_path, [_raw("Message-ID: <a@acme.example>", subject="Secret subject")])

    def broken(*_args: object, **_kwargs: object) -> None:
        if failure == "data":
            raise DataError(
                "INSERT INTO contacts (name) VALUES (%(name)s)",
                {"name": "Secret subject"},
                ValueError("value too long for type character varying(300)\nCONTEXT: unnamed portal"),
            )
        raise RuntimeError("first line\nsecond line with Secret subject")

    monkeypatch.setattr(process, "_prepare", broken)
    assert cli("sync", "--once").code == 0
    [entry] = _json(cli, "export", "quarantine")
    expected = {
        "data": "internal error: DataError: value too long for type character varying(300)",
        "plain": "internal error: RuntimeError: first line",
    }
    assert entry["reason"] == expected[failure]

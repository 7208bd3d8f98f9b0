"""`crm-sync contact merge|show` (audit F1): a changed address made a second contact; merging makes one again.

The audit's scenario through the CLI: John Smith's address changes, the re-import creates a namesake (the
summary says so), his mail from the new address lands in review, a file naming both addresses is rejected
with the merge to run; after the merge the file imports and the mail follows his opportunity.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.builders import REP, maildir, message

ACCOUNTS = f"Name,Type,Domains,Territory,Owner\nAcme Corp,customer,acme.example,West,{REP}\n"
HEADER = "First Name,Last Name,Company,E-mail Address,E-mail 2 Address\n"
OLD = HEADER + "John,Smith,Acme Corp,john@acme.example,\n"
NEW = HEADER + "John,Smith,Acme Corp,john.smith@acme.example,\n"
BOTH = HEADER + "John,Smith,Acme Corp,john.smith@acme.example,john@acme.example\n"
OPPORTUNITIES = (
    "Title,Account,Stage,Owner,Contacts,Amount,Close Date,Source\n"
    f"Acme Renewal,Acme Corp,Qualification,{REP},john@acme.example,,,\n"
    f"Acme Expansion,Acme Corp,Qualification,{REP},,,,\n"
)


def ok(result: Any) -> Any:
    assert result.code == 0, (result.out, result.err)
    return result


def exported(cli: Any, kind: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(ok(cli("export", kind, "--format", "json")).out)
    return data


def _file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _crm(cli: Any, tmp_path: Path) -> None:
    """Acme with John (old address) on Acme Renewal, and Acme Expansion without participants."""
    ok(cli("init"))
    ok(cli("import", "accounts", _file(tmp_path, "accounts.csv", ACCOUNTS)))
    ok(cli("import", "contacts", _file(tmp_path, "old.csv", OLD)))
    ok(cli("import", "opportunities", _file(tmp_path, "opportunities.csv", OPPORTUNITIES)))


def test_changed_address_is_merged_and_mail_follows_the_opportunity(cli: Any, tmp_path: Path) -> None:
    _crm(cli, tmp_path)
    box = tmp_path / "mail"
    maildir(box, [message("m1@acme.example", "john@acme.example", [REP], "Renewal terms")])
    ok(cli("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{box}"))
    ok(cli("sync", "--once"))

    created = ok(cli("import", "contacts", _file(tmp_path, "new.csv", NEW)))
    assert (
        "line 2: created John Smith (contact 2); contact 1 at Acme Corp has the same name — if it is the same "
        "person: crm-sync contact merge 2 1"
    ) in created.out.splitlines()
    again = ok(cli("import", "contacts", _file(tmp_path, "new.csv", NEW)))
    assert "1 unchanged" in again.out and "same name" not in again.out  # importing it twice changes nothing

    maildir(box, [message("m2@acme.example", "john.smith@acme.example", [REP], "New address, same deal")])
    ok(cli("sync", "--once"))
    by_subject = {a["subject"]: a for a in exported(cli, "activities")}
    assert by_subject["New address, same deal"]["opportunity"] is None  # the audit's symptom: in review
    assert [r["activity_id"] for r in exported(cli, "review")] == [by_subject["New address, same deal"]["id"]]

    rejected = cli("import", "contacts", _file(tmp_path, "both.csv", BOTH))
    assert rejected.code == 1
    assert rejected.err.endswith("merge them first: crm-sync contact merge 2 1\n") and rejected.err.count("\n") == 1

    merged = ok(cli("contact", "merge", "2", "1"))
    first, rematched = merged.out.splitlines()
    assert first == (
        "merged contact 2 (John Smith) into contact 1 (John Smith): moved 1 address, 0 phones, 1 activity link, "
        "0 link removals, 0 opportunity roles; contact 2 deleted"
    )
    assert rematched.startswith("re-matched ") and "1 relinked" in rematched

    contacts = exported(cli, "contacts")
    assert [(c["id"], c["emails"]) for c in contacts] == [(1, ["john@acme.example", "john.smith@acme.example"])]
    by_subject = {a["subject"]: a for a in exported(cli, "activities")}
    assert by_subject["New address, same deal"]["opportunity"] == "Acme Renewal"
    assert by_subject["New address, same deal"]["contacts"] == ["john@acme.example"]  # INTO's primary
    assert by_subject["Renewal terms"]["opportunity"] == "Acme Renewal"
    assert exported(cli, "review") == []

    both = ok(cli("import", "contacts", _file(tmp_path, "both.csv", BOTH)))  # rejected before the merge
    assert both.out.startswith("contacts: 1 rows — 0 created, 0 updated, 1 unchanged")
    for name, text in (("old.csv", OLD), ("new.csv", NEW)):
        assert "1 unchanged" in ok(cli("import", "contacts", _file(tmp_path, name, text))).out

    maildir(box, [message("m3@acme.example", "john.smith@acme.example", [REP], "Next week")])
    ok(cli("sync", "--once"))
    assert {a["subject"]: a for a in exported(cli, "activities")}["Next week"]["opportunity"] == "Acme Renewal"


def test_dry_run_prints_what_would_move_and_changes_nothing(cli: Any, tmp_path: Path) -> None:
    _crm(cli, tmp_path)
    phone = (
        "First Name,Last Name,Company,E-mail Address,Business Phone\n"
        "John,Smith,Acme Corp,john.smith@acme.example,+1 202 555 0123\n"
    )
    ok(cli("import", "contacts", _file(tmp_path, "new.csv", phone)))
    before = [exported(cli, kind) for kind in ("contacts", "opportunities")]
    dry = ok(cli("contact", "merge", "john.smith@acme.example", "1", "--dry-run"))
    assert dry.out == (
        "would merge contact 2 (John Smith) into contact 1 (John Smith): would move 1 address, 1 phone, "
        "0 activity links, 0 link removals, 0 opportunity roles; nothing changed (--dry-run)\n"
    )
    assert [exported(cli, kind) for kind in ("contacts", "opportunities")] == before


def test_errors_are_one_line_and_change_nothing(cli: Any, tmp_path: Path) -> None:
    _crm(cli, tmp_path)
    ok(cli("import", "contacts", _file(tmp_path, "new.csv", NEW)))
    ok(cli("import", "contacts", _file(tmp_path, "shared.csv", "First Name,E-mail Address\nJane,jane@acme.example\n")))
    ok(cli("import", "contacts", _file(tmp_path, "shared2.csv", "First Name,E-mail Address\nJim,jim@acme.example\n")))
    before = exported(cli, "contacts")
    cases = {
        ("2", "2"): "cannot merge contact 2 into itself",
        ("2", "john.smith@acme.example"): "cannot merge contact 2 into itself",
        ("2", "99"): "no contact 99 (see: crm-sync export contacts)",
        ("99", "1"): "no contact 99 (see: crm-sync export contacts)",
        ("nobody@acme.example", "1"): "no contact has the address nobody@acme.example",
        ("John Smith", "1"): "'John Smith' is neither a contact id nor an e-mail address",
    }
    for args, message_ in cases.items():
        result = cli("contact", "merge", *args)
        assert (result.code, result.out, result.err) == (1, "", f"crm-sync: error: {message_}\n"), args
    assert cli("contact", "merge", "2").code == 2
    assert cli("contact", "show", "99").err == "crm-sync: error: no contact 99 (see: crm-sync export contacts)\n"
    assert exported(cli, "contacts") == before


def test_show_one_contact(cli: Any, tmp_path: Path) -> None:
    _crm(cli, tmp_path)
    shown = ok(cli("contact", "show", "JOHN@acme.example"))
    assert shown.out.splitlines() == [
        "contact 1: John Smith — account: Acme Corp [1] (source: import)",
        "  addresses: john@acme.example (primary)",
        "  opportunities: Acme Renewal [1] (open)",
        "  activities: 0 linked (0 by a person)",
    ]

"""Audit 17a F7 and F2 through `crm-sync import`, on SQLite and PostgreSQL alike.

A value longer than its column rejects the file with its line and the reason (PostgreSQL gave a DataError with no
line; SQLite stored it); NUL and other control characters leave the names; a card with a big photo imports, and a
card too large rejects the file naming the card (SPEC §5).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ACCOUNTS = "Name,Type,Domains,Territory,Owner\nAcme,customer,acme.example,West,\n"
GOOD_CARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Good Neighbour\r\nEMAIL:good@acme.example\r\nEND:VCARD\r\n"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return str(path)


def ok(result: Any) -> str:
    assert result.code == 0, (result.out, result.err)
    return str(result.out)


def rejected(result: Any) -> str:
    assert result.code == 1, (result.out, result.err)
    assert "database error" not in result.err
    return str(result.err).strip()


def setup(cli: Any, tmp_path: Path) -> None:
    ok(cli("init"))
    ok(cli("import", "accounts", write(tmp_path, "accounts.csv", ACCOUNTS)))


def test_over_long_cells_reject_the_file_at_their_line(cli: Any, tmp_path: Path) -> None:
    setup(cli, tmp_path)
    header = "First Name,Last Name,Company,E-mail Address\n"
    contacts = header + "Ann,Lee,Acme,ann@acme.example\n" + f"{'F' * 400},Lee,Acme,f@acme.example\n"
    assert rejected(cli("import", "contacts", write(tmp_path, "c.csv", contacts))) == (
        "crm-sync: error: line 3: First Name is 400 characters, the longest allowed is 100"
    )
    full = "Name,E-mail Address\n" + f"{'N' * 412},n@acme.example\n"
    assert rejected(cli("import", "contacts", write(tmp_path, "n.csv", full))).endswith(
        "line 2: Name is 412 characters, the longest allowed is 300"
    )
    accounts = ACCOUNTS + f"{'A' * 301},prospect,,,\n"
    assert rejected(cli("import", "accounts", write(tmp_path, "a.csv", accounts))).endswith(
        "line 3: Name is 301 characters, the longest allowed is 300"
    )
    territory = ACCOUNTS + f"Globex,prospect,,{'T' * 101},\n"
    assert rejected(cli("import", "accounts", write(tmp_path, "t.csv", territory))).endswith(
        "line 3: Territory is 101 characters, the longest allowed is 100"
    )
    leads = "Name,Company,Email,Phone,Status,Source,Owner\n" + f"Bo,{'C' * 350},,,,,\n"
    assert rejected(cli("import", "leads", write(tmp_path, "l.csv", leads))).endswith(
        "line 2: Company is 350 characters, the longest allowed is 300"
    )
    address = "x" * 320 + "@acme.example"
    assert "is 333 characters, the longest e-mail address allowed is 320" in rejected(
        cli("import", "contacts", write(tmp_path, "e.csv", f"{header}Ann,Lee,Acme,{address}\n"))
    )
    opportunities = "Title,Account,Stage,Owner,Contacts,Amount,Close Date,Source\n" + f"{'O' * 301},Acme,,,,,,\n"
    assert rejected(cli("import", "opportunities", write(tmp_path, "o.csv", opportunities))).endswith(
        "line 2: Title is 301 characters, the longest allowed is 300"
    )
    assert json.loads(ok(cli("export", "contacts", "--format", "json"))) == []  # nothing of a rejected file


def test_vcard_names_lose_nul_and_control_characters(cli: Any, tmp_path: Path) -> None:
    setup(cli, tmp_path)
    card = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:nul\x00name\x1b[31m\r\nEMAIL:nulfn@acme.example\r\nEND:VCARD\r\n"
    ok(cli("import", "contacts", write(tmp_path, "nul.vcf", GOOD_CARD + card)))
    names = {c["name"] for c in json.loads(ok(cli("export", "contacts", "--format", "json")))}
    assert names == {"Good Neighbour", "nulname[31m"}
    long_fn = f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{'F' * 400}\r\nEMAIL:f@acme.example\r\nEND:VCARD\r\n"
    assert rejected(cli("import", "contacts", write(tmp_path, "long.vcf", GOOD_CARD + long_fn))).endswith(
        "FN (the name) is 400 characters, the longest allowed is 300"
    )


def test_a_photo_is_skipped_and_a_card_too_large_rejects_the_file(cli: Any, tmp_path: Path) -> None:
    setup(cli, tmp_path)
    photo = "\r\n ".join(["PHOTO;ENCODING=b;TYPE=JPEG:" + "A" * 48, *(["QUJD" * 18] * 4000)])  # 300 KB
    card = f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Photo Person\r\n{photo}\r\nEMAIL:photo@acme.example\r\nEND:VCARD\r\n"
    ok(cli("import", "contacts", write(tmp_path, "photo.vcf", GOOD_CARD + card)))
    assert len(json.loads(ok(cli("export", "contacts", "--format", "json")))) == 2
    note = card.replace("PHOTO;ENCODING=b;TYPE=JPEG:", "NOTE:")  # the same size in a property crm-sync keeps
    message = rejected(cli("import", "contacts", write(tmp_path, "big.vcf", GOOD_CARD + note)))
    assert message.startswith("crm-sync: error: broken vCard, nothing imported: card 2: card too large: ")
    assert message.endswith("(the limit is 256,000) (card starts at line 6)")

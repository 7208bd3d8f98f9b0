"""What the CLI prints of mail, calendars and imports cannot act on the admin's terminal (audit 17a, F8): ESC
sequences (colours, clear screen, an OSC window title), other C0/C1 controls and bidi overrides are removed from
printed text — tables, lines and the one-line error."""

from __future__ import annotations

import json
from pathlib import Path

from sync_service.cli.terminal import terminal_safe

HOSTILE = "Evil\x1b[31m\x1b]0;owned\x07\u202egpj.exe\x9b2J Name"


def test_terminal_safe_removes_controls_and_bidi_overrides_but_keeps_text() -> None:
    assert terminal_safe(HOSTILE) == "Evil[31m]0;ownedgpj.exe2J Name"
    assert terminal_safe("tab\there\nnew line, שלום, Ünïcödé") == "tab\there\nnew line, שלום, Ünïcödé"


def test_a_hostile_name_is_printed_harmless_and_exported_whole(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(f"First Name,Last Name,E-mail Address\n{HOSTILE},Doe,evil@acme.example\n", encoding="utf-8")
    assert cli("init").code == 0
    imported = cli("import", "contacts", str(contacts))
    assert imported.code == 0, imported.err

    table = cli("export", "contacts")
    assert table.code == 0 and "Evil[31m]0;ownedgpj.exe2J Name Doe" in table.out
    assert not any(ch in table.out for ch in "\x1b\x07\x9b\u202e")

    [contact] = json.loads(cli("export", "contacts", "--format", "json").out)
    assert contact["name"].startswith("Evil")  # valid JSON, whatever the import kept of the name

    failed = cli("contact", "show", "evil\x1b]0;x\x07@nowhere.example")
    assert failed.code == 1 and "\x1b" not in failed.err and "\x07" not in failed.err

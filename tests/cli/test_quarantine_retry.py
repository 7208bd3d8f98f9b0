"""`crm-sync quarantine retry` (SPEC §6: what cannot be used is quarantined with its reason and can be retried),
including a message that was never stored because it was over CRM_MAX_MESSAGE_BYTES."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.builders import REP, maildir, message

ACCOUNTS = "Name,Type,Domains,Territory,Owner\nACME,customer,acme.example,West,{rep}\n"


def _export(cli: Any, kind: str) -> list[dict[str, Any]]:
    result = cli("export", kind, "--format", "json")
    assert result.code == 0, result.err
    return list(json.loads(result.out))


def test_a_message_over_the_size_limit_is_fetched_again_once_the_limit_allows(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("init").code == 0
    (tmp_path / "accounts.csv").write_text(ACCOUNTS.format(rep=REP), encoding="utf-8")
    assert cli("import", "accounts", str(tmp_path / "accounts.csv")).code == 0
    big = message("big@acme.example", "wile@acme.example", [REP], "Big specs", body="x" * 20_000)
    small = message("small@acme.example", "wile@acme.example", [REP], "Small note")
    box = maildir(tmp_path / "mail", [big, small])
    assert cli("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{box}").code == 0
    monkeypatch.setenv("CRM_MAX_MESSAGE_BYTES", "10000")
    assert cli("sync", "--once").code == 0
    assert [a["subject"] for a in _export(cli, "activities")] == ["Small note"]
    [entry] = _export(cli, "quarantine")
    assert "over the limit of 10000 bytes (CRM_MAX_MESSAGE_BYTES)" in entry["reason"]

    retried = cli("quarantine", "retry", str(entry["id"]))
    assert retried.code == 0 and "never stored" in retried.out
    assert cli("sync", "--once").code == 0  # the limit still holds: quarantined again, nothing else changes
    assert [a["subject"] for a in _export(cli, "activities")] == ["Small note"]
    assert [q["external_id"] for q in _export(cli, "quarantine")] == [entry["external_id"]]

    monkeypatch.setenv("CRM_MAX_MESSAGE_BYTES", "1000000")
    assert cli("quarantine", "retry", str(entry["id"])).code == 0
    assert cli("sync", "--once").code == 0
    assert sorted(a["subject"] for a in _export(cli, "activities")) == ["Big specs", "Small note"]
    assert _export(cli, "quarantine") == []
    assert cli("sync", "--once").code == 0
    assert len(_export(cli, "activities")) == 2  # nothing doubled by the folder read again


def test_a_bad_item_is_retried_and_an_unknown_entry_is_one_line(cli: Any, tmp_path: Path) -> None:
    assert cli("init").code == 0
    box = maildir(tmp_path / "mail", [b"\x00\x01 not a message at all"])
    assert cli("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{box}").code == 0
    assert cli("sync", "--once").code == 0
    [entry] = _export(cli, "quarantine")
    retried = cli("quarantine", "retry", str(entry["id"]))  # processed again: the same reason again
    assert retried.code == 0 and "still quarantined" in retried.out
    assert [(q["id"], q["retries"]) for q in _export(cli, "quarantine")] == [(entry["id"], 1)]
    missing = cli("quarantine", "retry", "999")
    assert (missing.code, missing.err) == (1, "crm-sync: error: no quarantine entry 999\n")
    assert cli("quarantine", "retry").code == 2

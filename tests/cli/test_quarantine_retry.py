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


def _init_with_accounts(cli: Any, tmp_path: Path) -> None:
    assert cli("init").code == 0
    (tmp_path / "accounts.csv").write_text(ACCOUNTS.format(rep=REP), encoding="utf-8")
    assert cli("import", "accounts", str(tmp_path / "accounts.csv")).code == 0


def test_a_message_over_the_size_limit_is_fetched_again_once_the_limit_allows(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _init_with_accounts(cli, tmp_path)
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


# Bulk retries: after an incident thousands of entries share a cause, and are retried by selector in one run.


def _bad_items(tmp_path: Path, name: str, junk: int = 1) -> Path:
    """A Maildir with ``junk`` messages that have no header and one calendar file that cannot be read."""
    box = maildir(tmp_path / name, [b"\x00\x01 not a message at all %d" % n for n in range(junk)])
    (box / f"{name}.ics").write_bytes(b"BEGIN:VCALENDAR\r\nthis is not a calendar")
    return box


def _retries(cli: Any) -> dict[tuple[str, str], int]:
    """(mailbox, kind of reason) → retries of each entry."""
    return {
        (q["mailbox"], "calendar" if "iCalendar" in q["reason"] else "junk"): q["retries"]
        for q in _export(cli, "quarantine")
    }


def test_all_retries_every_entry_in_one_run_and_reports_what_is_still_quarantined(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sync_service.pipeline.process as process

    _init_with_accounts(cli, tmp_path)
    mails = [message(f"m{n}@acme.example", "wile@acme.example", [REP], f"Specs {n}") for n in range(3)]
    box = maildir(tmp_path / "mail", [*mails, b"\x00\x01 not a message at all"])
    assert cli("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{box}").code == 0
    apply_email = process.apply_email

    def broken(*args: Any, **kwargs: Any) -> list[str]:  # the incident: every email fails while written
        raise RuntimeError("schema mismatch on activities")

    monkeypatch.setattr(process, "apply_email", broken)
    assert cli("sync", "--once").code == 0
    assert len(_export(cli, "quarantine")) == 4 and _export(cli, "activities") == []
    monkeypatch.setattr(process, "apply_email", apply_email)  # the cause is fixed

    retried = cli("quarantine", "retry", "--all")
    assert (retried.code, retried.err) == (0, "")  # no progress bar when standard error is not a terminal
    assert retried.out.splitlines() == [
        "Retried 4 entries: 3 left the quarantine, 1 still quarantined.",
        "Still quarantined, by reason:",
        "        1  no header found",
        "1 entry in the quarantine now.",
    ]
    assert sorted(a["subject"] for a in _export(cli, "activities")) == ["Specs 0", "Specs 1", "Specs 2"]
    assert [(q["reason"], q["retries"]) for q in _export(cli, "quarantine")] == [("no header found", 1)]


def test_mailbox_and_reason_select_the_entries_retried(cli: Any, tmp_path: Path) -> None:
    assert cli("init").code == 0
    for name in ("alice", "bob"):
        box = _bad_items(tmp_path, name)
        assert cli("mailbox", "add", name, "--owner", REP, "--source", f"maildir://{box}").code == 0
    assert cli("sync", "--once").code == 0
    assert set(_retries(cli).values()) == {0} and len(_retries(cli)) == 4

    by_reason = cli("quarantine", "retry", "--reason", "readable ICALENDAR")  # any case
    assert by_reason.code == 0 and "Retried 2 entries: 0 left the quarantine, 2 still quarantined." in by_reason.out
    assert _retries(cli) == {("alice", "calendar"): 1, ("bob", "calendar"): 1, ("alice", "junk"): 0, ("bob", "junk"): 0}

    by_mailbox = cli("quarantine", "retry", "--mailbox", "bob")
    assert by_mailbox.code == 0 and "Retried 2 entries" in by_mailbox.out
    assert _retries(cli) == {("alice", "calendar"): 1, ("bob", "calendar"): 2, ("alice", "junk"): 0, ("bob", "junk"): 1}

    both = cli("quarantine", "retry", "--mailbox", "alice", "--mailbox", "bob", "--reason", "no header")
    assert both.code == 0 and "Retried 2 entries" in both.out and "4 entries in the quarantine now." in both.out
    assert _retries(cli) == {("alice", "calendar"): 1, ("bob", "calendar"): 2, ("alice", "junk"): 1, ("bob", "junk"): 2}

    neither = cli("quarantine", "retry", "--mailbox", "alice", "--reason", "no such reason")
    assert (neither.code, neither.out.splitlines()[0]) == (0, "No quarantine entry matches; nothing retried.")
    assert _retries(cli) == {("alice", "calendar"): 1, ("bob", "calendar"): 2, ("alice", "junk"): 1, ("bob", "junk"): 2}


def test_ids_with_selectors_or_nothing_is_a_usage_error_and_an_unknown_mailbox_is_one_line(
    cli: Any, tmp_path: Path
) -> None:
    assert cli("init").code == 0
    box = _bad_items(tmp_path, "alice")
    assert cli("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{box}").code == 0
    assert cli("sync", "--once").code == 0
    entry = _export(cli, "quarantine")[0]["id"]
    for args in ((), (str(entry), "--all"), (str(entry), "--mailbox", "alice"), (str(entry), "--reason", "x")):
        usage = cli("quarantine", "retry", *args)
        assert (usage.code, usage.out, len(usage.err.splitlines())) == (2, "", 1), args
        assert usage.err.startswith("crm-sync: usage error: "), args
    unknown = cli("quarantine", "retry", "--mailbox", "nobody", "--all")
    assert (unknown.code, unknown.out, unknown.err) == (1, "", "crm-sync: error: no mailbox named 'nobody'\n")
    assert {q["retries"] for q in _export(cli, "quarantine")} == {0}  # nothing was retried


def test_retrying_500_entries_sets_them_pending_together_and_processes_them_in_one_run(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sync_service.dashboard.actions as actions

    assert cli("init").code == 0
    box = maildir(tmp_path / "mail", [b"\x00\x01 not a message at all %d" % n for n in range(500)])
    assert cli("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{box}").code == 0
    assert cli("sync", "--once").code == 0
    ids = [str(q["id"]) for q in _export(cli, "quarantine")]
    assert len(ids) == 500
    runs: list[dict[str, Any]] = []
    process_pending = actions.process_pending

    def counted(app: Any, **kwargs: Any) -> Any:
        runs.append(kwargs)
        return process_pending(app, **kwargs)

    monkeypatch.setattr(actions, "process_pending", counted)
    retried = cli("quarantine", "retry", *ids)  # by id: one run for all of them, not one per entry
    assert retried.code == 0, retried.err
    assert len(runs) == 1
    assert "Retried 500 entries: 0 left the quarantine, 500 still quarantined." in retried.out
    assert "      500  no header found" in retried.out
    assert cli("quarantine", "retry", "--all").code == 0
    assert len(runs) == 2
    assert {q["retries"] for q in _export(cli, "quarantine")} == {2}


def test_a_bulk_retry_has_items_never_stored_fetched_again_by_the_next_sync(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _init_with_accounts(cli, tmp_path)
    big = [message(f"big{n}@acme.example", "wile@acme.example", [REP], f"Big {n}", body="x" * 20_000) for n in (1, 2)]
    box = maildir(tmp_path / "mail", [*big, b"\x00\x01 not a message at all"])
    assert cli("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{box}").code == 0
    monkeypatch.setenv("CRM_MAX_MESSAGE_BYTES", "10000")
    assert cli("sync", "--once").code == 0
    assert len(_export(cli, "quarantine")) == 3

    monkeypatch.setenv("CRM_MAX_MESSAGE_BYTES", "1000000")
    retried = cli("quarantine", "retry", "--all")
    assert retried.code == 0, retried.err
    assert "Retried 1 entry: 0 left the quarantine, 1 still quarantined." in retried.out
    assert "2 entries never stored (over CRM_MAX_MESSAGE_BYTES): their folders are read again" in retried.out
    assert cli("sync", "--once").code == 0
    assert sorted(a["subject"] for a in _export(cli, "activities")) == ["Big 1", "Big 2"]
    assert [q["reason"] for q in _export(cli, "quarantine")] == ["no header found"]

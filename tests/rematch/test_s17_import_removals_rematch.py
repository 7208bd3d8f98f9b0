"""Audit 17b F2: what an import takes away is a CRM change that re-matching follows (SPEC §3.7), and history
stands (``keep_earlier_opportunity``).

- A participant the opportunities file no longer lists leaves the opportunity: mail logged on it by rule c stays
  there (still one of the candidates); the next mail from that person is no longer routed to it by rule c.
- A domain the accounts file no longer lists leaves the account: mail logged by that domain keeps its links
  (re-matching never deletes an activity, and its sender became a contact of the account when it was logged),
  and a stranger's later mail from the domain is no longer logged.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.rematch.conftest import ACCOUNTS, OPPORTUNITIES, by_subject, exported, ok, write_csv
from tests.support.builders import REP, maildir, message


def test_a_participant_removed_by_import_keeps_its_history_and_no_longer_routes_new_mail(
    world, import_crm, synced, tmp_path: Path
) -> None:
    import_crm(domes="mindy@globex.example")
    box = maildir(tmp_path / "alice", [message("m1@globex.example", "mindy@globex.example", [REP], "Sizes")])
    synced(box)
    assert by_subject(world)["Sizes"]["opportunity"] == "Domes"  # rule c: Mindy takes part in Domes only

    path = write_csv(tmp_path, "opps2.csv", OPPORTUNITIES, domes="hank@globex.example")
    out = ok(world("import", "opportunities", str(path))).out
    assert "Domes lost participant mindy@globex.example" in out
    assert "re-matched" in out  # a removal is a CRM change: earlier items are matched again
    domes = next(o for o in exported(world, "opportunities") if o["title"] == "Domes")
    ids = {c["emails"][0]: c["id"] for c in exported(world, "contacts")}
    assert domes["participants"] == [ids["hank@globex.example"]]
    assert by_subject(world)["Sizes"]["opportunity"] == "Domes"  # history stands: still one of the candidates
    assert exported(world, "review") == []

    maildir(box, [message("m2@globex.example", "mindy@globex.example", [REP], "More sizes")])
    synced(box)
    later = by_subject(world)["More sizes"]
    assert later["opportunity"] is None  # rule c no longer applies: both Globex opportunities → review
    [review] = exported(world, "review")
    assert review["activity_id"] == later["id"]

    again = ok(world("import", "opportunities", str(path))).out  # SPEC §5: the same file changes nothing
    assert "0 updated" in again and "lost" not in again and "re-matched" not in again


def test_a_domain_removed_by_import_keeps_logged_mail_and_stops_logging_strangers(
    world, synced, tmp_path: Path
) -> None:
    two = ACCOUNTS.replace("Globex,prospect,globex.example,", "Globex,prospect,globex.example;globex.co,")
    ok(world("import", "accounts", str(write_csv(tmp_path, "accounts2.csv", two))))
    box = maildir(tmp_path / "alice", [message("s1@globex.co", "sam@globex.co", [REP], "Hello from .co")])
    synced(box)
    hello = by_subject(world)["Hello from .co"]
    assert hello["account"] == "Globex" and hello["contacts"] == ["sam@globex.co"]  # Sam became a contact

    out = ok(world("import", "accounts", str(write_csv(tmp_path, "accounts.csv", ACCOUNTS)))).out
    assert "1 updated" in out and "Globex lost domain globex.co" in out and "re-matched" in out
    globex = next(a for a in exported(world, "accounts") if a["name"] == "Globex")
    assert globex["domains"] == ["globex.example"]
    assert by_subject(world)["Hello from .co"]["account"] == "Globex"  # logged mail keeps its account

    maildir(box, [message("t1@globex.co", "tom@globex.co", [REP], "Stranger from .co")])
    synced(box)
    assert "Stranger from .co" not in by_subject(world)  # the domain no longer makes a stranger Globex's
    skipped = json.loads(ok(world("status", "--json")).out)["skipped"]
    assert dict(skipped).get("unmatched") == 1


def test_without_auto_created_contacts_mail_logged_by_a_removed_domain_keeps_its_account(
    world, synced, tmp_path: Path, monkeypatch
) -> None:
    """The item would be skipped now (no contact, no domain): re-matching never deletes an activity nor strips
    its links, so it stays on the account it was logged for."""
    monkeypatch.setenv("CRM_AUTO_CREATE", "none")
    two = ACCOUNTS.replace("Globex,prospect,globex.example,", "Globex,prospect,globex.example;globex.co,")
    ok(world("import", "accounts", str(write_csv(tmp_path, "accounts2.csv", two))))
    synced(maildir(tmp_path / "alice", [message("s1@globex.co", "sam@globex.co", [REP], "Hello from .co")]))
    hello = by_subject(world)["Hello from .co"]
    assert (hello["account"], hello["contacts"]) == ("Globex", [])

    out = ok(world("import", "accounts", str(write_csv(tmp_path, "accounts.csv", ACCOUNTS)))).out
    assert "Globex lost domain globex.co" in out and "re-matched 1 items" in out
    assert by_subject(world)["Hello from .co"]["account"] == "Globex"
    explained = ok(world("match", "explain", str(hello["id"]))).out
    assert "it stays logged with its links (re-matching never un-logs)" in explained  # not "the next re-match…"
    assert "next re-match applies it" not in explained

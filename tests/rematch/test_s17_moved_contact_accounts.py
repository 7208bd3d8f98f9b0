"""A contact moves to another account (audit 17b, F6): her past mail stays with the opportunity it was linked
to, so it keeps that opportunity's account — as its primary account, on the activity and its documents — and
gets her new account as a further link. Re-matching again changes nothing; a link a person removed stays
removed."""

from __future__ import annotations

from pathlib import Path

from tests.rematch.conftest import by_subject, exported, ids, ok, write_csv
from tests.support.builders import REP, maildir, message

PDF = b"%PDF-1.4 expansion"
CONTACTS = "First Name,Last Name,Company,E-mail Address\nWile,Coyote,{company},wile@acme.example\n"
OPPORTUNITIES = (
    "Title,Account,Stage,Owner,Contacts,Amount,Close Date,Source\n"
    "Rockets,ACME,Needs analysis,{rep},wile@acme.example,,,\n"
)


def _moved(world, synced, tmp_path: Path) -> dict:  # type: ignore[no-untyped-def]
    """Wile's mail logged on ACME's Rockets, then Wile imported again as a Globex contact."""
    ok(world("import", "contacts", str(write_csv(tmp_path, "c1.csv", CONTACTS, company="ACME"))))
    ok(world("import", "opportunities", str(write_csv(tmp_path, "o.csv", OPPORTUNITIES))))
    box = maildir(
        tmp_path / "alice",
        [
            message(
                "x1@acme.example",
                "Wile <wile@acme.example>",
                [REP],
                "Expansion questions",
                attachment=("q.pdf", PDF, "application/pdf"),
            )
        ],
    )
    synced(box)
    before = by_subject(world)["Expansion questions"]
    assert (before["account"], before["accounts"], before["opportunity"]) == ("ACME", ["ACME"], "Rockets")
    out = ok(world("import", "contacts", str(write_csv(tmp_path, "c2.csv", CONTACTS, company="Globex")))).out
    assert "re-matched 1 items" in out
    return by_subject(world)["Expansion questions"]  # type: ignore[no-any-return]


def test_past_mail_of_a_moved_contact_keeps_its_opportunitys_account(world, synced, tmp_path: Path) -> None:
    after = _moved(world, synced, tmp_path)
    assert after["opportunity"] == "Rockets"
    assert after["account"] == "ACME"  # the account of the opportunity it stays with
    assert sorted(after["accounts"]) == ["ACME", "Globex"]  # and her account now, too
    documents = [d for d in exported(world, "documents") if d["activity_id"] == after["id"]]
    assert len(documents) == 2 and {(d["account"], d["opportunity"]) for d in documents} == {("ACME", "Rockets")}
    # Stable: re-matching again has nothing to change, and `match explain` shows the kept account.
    assert "0 relinked, 1 unchanged" in ok(world("match", "rematch")).out
    explained = ok(world("match", "explain", str(after["id"]))).out
    assert "primary account: ACME" in explained and "a fresh decision now concludes the same" in explained


def test_a_person_who_removed_the_opportunitys_account_keeps_it_removed(world, synced, tmp_path: Path) -> None:
    after = _moved(world, synced, tmp_path)
    acme = ids(world, "accounts")["ACME"]
    ok(world("activity", "unlink", str(after["id"]), "--account", str(acme)))
    ok(world("match", "rematch"))
    again = by_subject(world)["Expansion questions"]
    assert (again["account"], again["accounts"], again["opportunity"]) == ("Globex", ["Globex"], "Rockets")

"""Re-matching and a person's links end to end through the CLI (SPEC §3.7): import → re-match, review assign,
activity link / unlink, match explain."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from crm_store.db import make_engine
from crm_store.models import Activity
from tests.rematch.conftest import by_subject, exported, ids, ok
from tests.support.builders import REP, ics, maildir, message, vevent

PDF = b"%PDF-1.4 pricing"


def _removed_links(explained: str) -> list[str]:
    lines = explained.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("links removed by a person"))
    section = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        section.append(line.strip())
    return section


def _status_skipped(cli) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return dict(json.loads(ok(cli("status", "--json")).out)["skipped"])


def test_unmatched_mail_is_logged_with_documents_once_its_sender_is_imported(
    world, import_crm, synced, tmp_path: Path
) -> None:
    box = maildir(
        tmp_path / "alice",
        [
            message(
                "w1@acme.example",
                "Wile <wile@acme.example>",
                [REP],
                "Pricing",
                attachment=("p.pdf", PDF, "application/pdf"),
            ),
            message("p1@gmail", "pal@gmail.com", [REP], "Dinner?"),
        ],
    )
    synced(box)
    # ACME's domain is known, so Wile's mail is logged and Wile becomes a contact by sync; pal stays private.
    assert set(by_subject(world)) == {"Pricing"}
    assert _status_skipped(world) == {"unmatched": 1}

    # A second mail from a stranger at a public provider: private until a contact registers that address.
    maildir(
        box,
        [
            message(
                "s1@gmail", "Sam <sam.stranger@gmail.com>", [REP], "Offer", attachment=("o.pdf", PDF, "application/pdf")
            )
        ],
    )
    synced(box)
    assert set(by_subject(world)) == {"Pricing"}
    assert _status_skipped(world) == {"unmatched": 2}
    contacts = "First Name,Last Name,Company,E-mail Address\nSam,Stranger,Globex,sam.stranger@gmail.com\n"
    (tmp_path / "sam.csv").write_text(contacts, encoding="utf-8")
    out = ok(world("import", "contacts", str(tmp_path / "sam.csv"))).out
    assert "re-matched" in out and "1 newly logged" in out

    offer = by_subject(world)["Offer"]
    assert offer["account"] == "Globex" and offer["contacts"] == ["sam.stranger@gmail.com"]
    assert offer["mailboxes"] == ["alice"] and offer["direction"] == "inbound" and offer["owner"] == REP
    assert sorted(offer["documents"]) == ["Offer.eml", "o.pdf"]
    documents = [d for d in exported(world, "documents") if d["activity_id"] == offer["id"]]
    assert {d["account"] for d in documents} == {"Globex"} and len(documents) == 2
    assert _status_skipped(world) == {"unmatched": 1}  # pal@gmail.com is still private

    # Importing the same file again changes nothing and re-matches nothing.
    again = ok(world("import", "contacts", str(tmp_path / "sam.csv"))).out
    assert "re-matched" not in again
    assert len(exported(world, "activities")) == 2


def test_unmatched_meeting_is_logged_once_its_attendee_is_a_contact(world, synced, tmp_path: Path) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    box = maildir(tmp_path / "alice", [])
    (box / "calendar.ics").write_bytes(
        ics(vevent("m1", "Coffee with Sam", start, attendees=("sam.stranger@gmail.com",)))
    )
    synced(box)
    assert exported(world, "activities") == []
    (tmp_path / "sam.csv").write_text(
        "First Name,Last Name,Company,E-mail Address\nSam,Stranger,ACME,sam.stranger@gmail.com\n", encoding="utf-8"
    )
    assert "1 newly logged" in ok(world("import", "contacts", str(tmp_path / "sam.csv"))).out
    [meeting] = exported(world, "activities")
    assert (meeting["type"], meeting["subject"], meeting["status"]) == ("meeting", "Coffee with Sam", "completed")
    assert meeting["ical_uid"] == "m1" and meeting["account"] == "ACME"
    assert meeting["contacts"] == ["sam.stranger@gmail.com"] and meeting["owner"] == REP
    assert meeting["start"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_links_move_when_a_participant_is_added_to_an_opportunity(world, import_crm, synced, tmp_path: Path) -> None:
    import_crm()
    box = maildir(
        tmp_path / "alice",
        [
            message(
                "g1@globex.example",
                "mindy@globex.example",
                [REP],
                "Sizes",
                attachment=("s.pdf", PDF, "application/pdf"),
            )
        ],
    )
    synced(box)
    sizes = by_subject(world)["Sizes"]
    assert sizes["opportunity"] is None and sizes["account"] == "Globex"  # Mindy is in no opportunity: review
    [review] = exported(world, "review")
    assert review["activity_id"] == sizes["id"]
    assert sorted(c["title"] for c in review["candidates"]) == ["Domes", "Lamps"]

    out = import_crm(domes="mindy@globex.example")  # Mindy becomes a participant of Domes
    assert "1 relinked" in out
    assert by_subject(world)["Sizes"]["opportunity"] == "Domes"
    assert exported(world, "review") == []
    documents = [d for d in exported(world, "documents") if d["activity_id"] == sizes["id"]]
    assert {d["opportunity"] for d in documents} == {"Domes"} and len(documents) == 2
    explained = ok(world("match", "explain", str(sizes["id"]))).out
    assert "rule c" in explained and "Domes" in explained


def test_review_assign_is_kept_by_rematching_and_replies_follow_it(world, import_crm, synced, tmp_path: Path) -> None:
    import_crm()
    first = message("q1@globex.example", "mindy@globex.example", [REP], "Question")
    reply = message(
        "q2@globex.example",
        "mindy@globex.example",
        [REP],
        "Re: Question",
        in_reply_to="q1@globex.example",
        at=datetime(2026, 11, 4, tzinfo=UTC),
    )
    synced(maildir(tmp_path / "alice", [first, reply]))
    acts = by_subject(world)
    assert acts["Question"]["opportunity"] is None and acts["Re: Question"]["opportunity"] is None
    assert len(exported(world, "review")) == 2
    opps = ids(world, "opportunities", "title")

    out = ok(world("review", "assign", str(acts["Question"]["id"]), str(opps["Lamps"]))).out
    assert "Lamps" in out and "chosen by a person" in out
    assert by_subject(world)["Question"]["opportunity"] == "Lamps"
    # At once, the reply follows the message it answers (rule a), and leaves the review queue …
    assert by_subject(world)["Re: Question"]["opportunity"] == "Lamps"
    assert exported(world, "review") == []
    ok(world("match", "rematch"))  # … and any later re-match keeps it so
    assert by_subject(world)["Re: Question"]["opportunity"] == "Lamps"
    # … and the person's choice stands even when a rule now points elsewhere.
    import_crm(domes="mindy@globex.example")
    acts = by_subject(world)
    assert acts["Question"]["opportunity"] == "Lamps"
    assert acts["Re: Question"]["opportunity"] == "Lamps"  # still rule a: the thread wins over rule c
    explained = ok(world("match", "explain", str(acts["Question"]["id"]))).out
    assert "chosen by a person" in explained and "review: resolved" in explained


def test_unlinked_contact_and_opportunity_are_never_linked_again(world, import_crm, synced, tmp_path: Path) -> None:
    import_crm()
    synced(maildir(tmp_path / "alice", [message("h1@globex.example", "hank@globex.example", [REP], "Lamp colours")]))
    act = by_subject(world)["Lamp colours"]
    assert act["opportunity"] == "Lamps" and act["contacts"] == ["hank@globex.example"]
    contacts, opps = ids(world, "contacts"), ids(world, "opportunities", "title")
    activity = str(act["id"])

    out = ok(world("activity", "unlink", activity, "--contact", str(contacts["Hank Scorpio"]))).out
    assert "removed" in out
    ok(world("activity", "unlink", activity, "--opportunity", str(opps["Lamps"])))
    act = by_subject(world)["Lamp colours"]
    assert act["contacts"] == [] and act["opportunity"] is None

    ok(world("match", "rematch"))
    import_crm(domes="hank@globex.example")  # an import that changes CRM data re-matches everything
    act = by_subject(world)["Lamp colours"]
    assert act["contacts"] == [] and act["account"] == "Globex"
    # Hank is in Lamps and Domes now: ambiguous, so review — without Lamps, which a person removed.
    assert act["opportunity"] is None
    [review] = exported(world, "review")
    assert review["activity_id"] == act["id"] and [c["title"] for c in review["candidates"]] == ["Domes"]
    removed = _removed_links(ok(world("match", "explain", activity)).out)
    assert removed == [
        f"contact: Hank Scorpio <hank@globex.example> [{contacts['Hank Scorpio']}]",
        "opportunity: Lamps [1]",
    ]

    # Linking it again by hand forgets the removal and is kept as a person's link.
    ok(world("activity", "link", activity, "--contact", str(contacts["Hank Scorpio"])))
    ok(world("match", "rematch"))
    assert by_subject(world)["Lamp colours"]["contacts"] == ["hank@globex.example"]
    assert _removed_links(ok(world("match", "explain", activity)).out) == ["opportunity: Lamps [1]"]


def test_manual_account_link_survives_and_becomes_primary_when_the_automatic_one_is_removed(
    world, import_crm, synced, tmp_path: Path
) -> None:
    import_crm()
    synced(maildir(tmp_path / "alice", [message("w2@acme.example", "wile@acme.example", [REP], "Intro to Globex")]))
    act = by_subject(world)["Intro to Globex"]
    accounts = ids(world, "accounts")
    activity = str(act["id"])
    ok(world("activity", "link", activity, "--account", str(accounts["Globex"])))
    assert by_subject(world)["Intro to Globex"]["accounts"] == ["ACME", "Globex"]
    ok(world("activity", "unlink", activity, "--account", str(accounts["ACME"])))
    ok(world("match", "rematch"))
    act = by_subject(world)["Intro to Globex"]
    assert act["accounts"] == ["Globex"] and act["account"] == "Globex"


def test_cli_errors(world) -> None:  # type: ignore[no-untyped-def]
    missing = world("review", "assign", "999", "1")
    assert missing.code == 1 and "no activity 999" in missing.err and missing.err.strip().count("\n") == 0
    assert world("activity", "link", "1").code == 2  # which link is missing
    assert world("activity", "unlink", "1", "--contact", "1", "--account", "2").code == 2
    assert world("match", "explain").code == 2
    assert world("match", "explain", "5").code == 1


def test_match_explain_says_why_and_why_not(world, import_crm, synced, tmp_path: Path) -> None:
    import_crm()
    synced(
        maildir(
            tmp_path / "alice",
            [
                message("e1@globex.example", "Hank <HANK@globex.example>", [REP], "Lamp order"),
                message("e2@gmail", "pal@gmail.com", [REP], "Dinner?"),
            ],
        )
    )
    act = by_subject(world)["Lamp order"]
    out = ok(world("match", "explain", str(act["id"]))).out
    lines = out.splitlines()
    assert lines[0].startswith(f"activity {act['id']}: email inbound 'Lamp order'")
    assert "  opportunity: Lamps [" in out and "  contact: Hank Scorpio <hank@globex.example>" in out
    assert "opportunity by rule c (the only open opportunity of a participant)" in out
    assert "sender hank@globex.example → contact" in out
    assert "a fresh decision now concludes the same" in out

    private = ok(world("match", "explain", "--message-id", "<e2@gmail>")).out
    assert "not logged (unmatched)" in private and "no external participant is a CRM contact" in private


def test_links_on_an_activity_without_a_synced_item(world, import_crm) -> None:  # type: ignore[no-untyped-def]
    import_crm()
    contacts, accounts = ids(world, "contacts"), ids(world, "accounts")
    engine = make_engine(os.environ["CRM_DATABASE_URL"])
    with Session(engine) as session, session.begin():
        task = Activity(type="task", subject="Send the brochure", status="planned", origin="user")
        session.add(task)
        session.flush()
        task_id = task.id
    engine.dispose()
    ok(world("activity", "link", str(task_id), "--contact", str(contacts["Mindy Globex"])))
    ok(world("activity", "link", str(task_id), "--account", str(accounts["Globex"])))
    task = by_subject(world)["Send the brochure"]
    assert task["contacts"] == ["mindy@globex.example"] and task["account"] == "Globex"
    explained = ok(world("match", "explain", str(task_id))).out
    assert "not a synced item" in explained and "(linked by a person)" in explained


def test_a_lead_removed_by_a_person_stays_removed_and_a_lead_set_by_a_person_is_kept(
    world, import_crm, synced, tmp_path: Path
) -> None:
    import_crm()
    leads = "Name,Company,Email,Phone,Status,Source,Owner\n"
    leads += "Rita Ray,Initrode,rita@initrode.example,,Prospect,Web form,\n"
    leads += "Tim Toe,Initrode,tim@initrode.example,,Prospect,Web form,\n"
    (tmp_path / "leads.csv").write_text(leads, encoding="utf-8")
    ok(world("import", "leads", str(tmp_path / "leads.csv")))
    synced(maildir(tmp_path / "alice", [message("r1@initrode.example", "rita@initrode.example", [REP], "Trial")]))
    act = by_subject(world)["Trial"]
    lead_ids = ids(world, "leads")
    assert act["lead"] == "Rita Ray"
    activity = str(act["id"])

    out = ok(world("activity", "unlink", activity, "--lead", str(lead_ids["Rita Ray"]))).out
    assert "lead" in out and "removed" in out
    ok(world("match", "rematch"))
    assert by_subject(world)["Trial"]["lead"] is None  # matching would link Rita again; a person said no
    assert _removed_links(ok(world("match", "explain", activity)).out) == [f"lead: Rita Ray [{lead_ids['Rita Ray']}]"]

    ok(world("activity", "link", activity, "--lead", str(lead_ids["Tim Toe"])))
    ok(world("match", "rematch"))
    assert by_subject(world)["Trial"]["lead"] == "Tim Toe"  # a person's lead, not the matcher's
    assert "Tim Toe" in ok(world("match", "explain", activity)).out.split("links now:")[1]
    assert world("activity", "link", activity, "--lead", "999").code == 1


def test_explain_applies_the_kept_lead_as_rematching_does(world, import_crm, synced, tmp_path: Path) -> None:
    """After a lead became a sale its person is a contact, and re-matching keeps the lead on the lead's earlier
    mail (``keep_earlier_lead``): ``match explain`` must conclude the same, not announce a change no re-match
    ever makes (audit 17b, F7)."""
    import_crm()
    leads = "Name,Company,Email,Phone,Status,Source,Owner\nSam Lead,Soylent,sam@soylent.example,,Initial Lead,Expo,\n"
    (tmp_path / "leads.csv").write_text(leads, encoding="utf-8")
    ok(world("import", "leads", str(tmp_path / "leads.csv")))
    synced(maildir(tmp_path / "alice", [message("s1@soylent.example", "sam@soylent.example", [REP], "Interested")]))
    ok(world("lead", "status", str(ids(world, "leads")["Sam Lead"]), "Awaiting sale"))
    ok(world("match", "rematch"))
    act = by_subject(world)["Interested"]
    assert act["lead"] == "Sam Lead" and act["opportunity"] is not None
    out = ok(world("match", "explain", str(act["id"]))).out
    assert "a fresh decision now concludes the same" in out, out

"""One sales rep's week, written twice: into the fake Microsoft 365 mailbox and into a Maildir (+ .ics + .vcf).

Both must yield the same CRM activities and contacts (issue 7: "a mailbox on the server produces the same
activities as the same messages from a Maildir").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.builders import REP, REP2, ics, maildir, message, vevent
from tests.support.graph_data import FakeMailbox

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
WILE = ("wile@acme.example",)
FMT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Week:
    inbox: list[bytes]
    sent: list[bytes]


def week() -> Week:
    """The messages, built once so that both sources carry the very same bytes."""
    day = NOW - timedelta(days=3)
    inbox = [
        message("w1@acme.example", "Wile <wile@acme.example>", [REP], "Rocket pricing", at=day,
                attachment=("pricing.pdf", b"%PDF-1.4 pricing", "application/pdf")),
        message("w2@globex.example", "hank@globex.example", [REP], "Dome sizes", at=day + timedelta(hours=1),
                cc=["mindy@globex.example"]),
        message("w3@news.example", "news@acme.example", [REP], "Newsletter", at=day + timedelta(hours=2),
                headers={"List-Unsubscribe": "<mailto:off@acme.example>"}),
        message("w4@internal", REP2, [REP], "Lunch?", at=day + timedelta(hours=3)),
        message("w5@initrode.example", "rita@initrode.example", [REP], "Intro call", at=day + timedelta(hours=4)),
        message("w6@acme.example", "roadrunner@acme.example", [REP], "Beep beep", at=day + timedelta(hours=5)),
    ]  # fmt: skip
    sent = [
        message("w7@northwind-sales.example", REP, ["wile@acme.example"], "Re: Rocket pricing",
                at=day + timedelta(hours=6), in_reply_to="w1@acme.example"),
        message("w8@northwind-sales.example", REP, ["hank@globex.example"], "Proposal [OPP-3]",
                at=day + timedelta(hours=7), attachment=("proposal.docx", b"PK proposal", "application/octet-stream")),
    ]  # fmt: skip
    return Week(inbox, sent)


SERIES_STARTS = [NOW - timedelta(weeks=2, hours=2) + timedelta(weeks=k) for k in range(4)]
MOVED, DROPPED = SERIES_STARTS[1], SERIES_STARTS[2]


def fill_graph(box: FakeMailbox, mails: Week) -> None:
    for raw in mails.inbox:
        box.deliver(raw, "inbox")
    for raw in mails.sent:
        box.deliver(raw, "sentitems")
    box.schedule("Rocket demo", NOW + timedelta(days=3), uid="demo@acme.example", attendees=WILE)
    box.schedule("Call Wile about pricing", NOW - timedelta(days=1), 30, uid="call@acme.example", attendees=WILE)
    visit = box.schedule("Site visit", NOW + timedelta(days=5), uid="visit@acme.example", attendees=WILE)
    box.cancel_meeting(visit)  # the attendee copy: isCancelled, "Canceled: " subject
    box.schedule("Team lunch", NOW - timedelta(days=2), uid="lunch@northwind", attendees=(REP2,))
    series = box.schedule_series("Steering", SERIES_STARTS, uid="steering@acme.example", attendees=WILE)
    box.reschedule(series[MOVED], MOVED + timedelta(hours=3))
    box.delete_event(series[DROPPED])
    box.add_contact("Road", "Runner", ["roadrunner@acme.example"], company="ACME", job_title="Speed tester",
                    business_phones=["+1 202 555 0142"])  # fmt: skip
    box.add_contact("Wile", "Coyote", ["wile@acme.example"], mobile="+1 202 555 0100")
    box.add_contact("Pal", "Private", ["pal@gmail.com"])  # a public mail domain: never auto-created


def fill_maildir(path: Path, mails: Week) -> Path:
    box = maildir(path, mails.inbox, mails.sent)
    moved = MOVED + timedelta(hours=3)
    calendar = ics(
        vevent("demo@acme.example", "Rocket demo", NOW + timedelta(days=3), attendees=WILE),
        vevent("call@acme.example", "Call Wile about pricing", NOW - timedelta(days=1), 30, attendees=WILE),
        vevent("visit@acme.example", "Canceled: Site visit", NOW + timedelta(days=5), attendees=WILE,
               extra=("STATUS:CANCELLED",)),
        vevent("lunch@northwind", "Team lunch", NOW - timedelta(days=2), attendees=(REP2,)),
        vevent("steering@acme.example", "Steering", SERIES_STARTS[0], attendees=WILE,
               extra=("RRULE:FREQ=WEEKLY;COUNT=4", f"EXDATE:{DROPPED.strftime(FMT)}")),
        vevent("steering@acme.example", "Steering", moved, attendees=WILE,
               extra=(f"RECURRENCE-ID:{MOVED.strftime(FMT)}",)),
    )  # fmt: skip
    (box / "calendar.ics").write_bytes(calendar)
    cards = [
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Road Runner\r\nN:Runner;Road;;;\r\nORG:ACME\r\nTITLE:Speed tester\r\n"
        "EMAIL;TYPE=INTERNET:roadrunner@acme.example\r\nTEL;TYPE=WORK,VOICE:+1 202 555 0142\r\nEND:VCARD\r\n",
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Wile Coyote\r\nN:Coyote;Wile;;;\r\n"
        "EMAIL;TYPE=INTERNET:wile@acme.example\r\nTEL;TYPE=CELL:+1 202 555 0100\r\nEND:VCARD\r\n",
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Pal Private\r\nN:Private;Pal;;;\r\n"
        "EMAIL;TYPE=INTERNET:pal@gmail.com\r\nEND:VCARD\r\n",
    ]
    (box / "contacts.vcf").write_text("".join(cards))
    return box

"""Sample mailboxes and calendars for ``crm-sync demo``.

The CRM side of the demo is static CSV in ``data/``; the mail side is generated because mail dates and
calendar items must sit inside the sync window around *now* (90 days back, 180 ahead). The output is a pure
function of ``now``: fixed offsets, fixed Message-IDs, UIDs, MIME boundaries and file names, no randomness.

Opportunity ids are assigned in ``opportunities.csv`` order from 1 on a fresh database, so ``[OPP-3]``
below is "Globex support renewal". ``data/README.md`` lists what every item is meant to show.
"""

from __future__ import annotations

import io
import os
import sys
import zipfile
from base64 import b64encode
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta, tzinfo
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from hashlib import sha256
from pathlib import Path
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress

DATA_DIR = Path(__file__).parent / "data"
INTERNAL_DOMAIN = "northwind-sales.example"
ALICE = "alice@northwind-sales.example"
BOB = "bob@northwind-sales.example"
REPS: tuple[tuple[str, str], ...] = ((ALICE, "Alice Martin"), (BOB, "Bob Chen"))

SHARED_MESSAGE_ID = "<hooli-redlines-1@mail.hooli.example>"  # CC'd to both reps: in both Maildirs
MALFORMED_FILE = "new/999.malformed.demo"  # relative to alice's Maildir; must be quarantined
RECURRING_UID = "acme-steering-weekly@northwind-sales.example"
INVITATION_UID = "hooli-contract-review@hooli.example"

_COLON = "!" if sys.platform == "win32" else ":"  # Maildir info separator (":" is not allowed on Windows)
_NAMES: dict[str, str] = {
    ALICE: "Alice Martin", BOB: "Bob Chen",
    "carol.diaz@acme.example": "Carol Diaz", "peter.novak@acme.example": "Peter Novak",
    "maria.lopez@acme.example": "Maria Lopez", "luis.moreno@eu.acme.example": "Luis Moreno",
    "dieter.klein@globex.example": "Dieter Klein", "sabine.wolf@globex.example": "Sabine Wolf",
    "hans.mueller@globex.example": "Hans Müller", "julia.braun@globex.example": "Julia Braun",
    "priya.raman@initech.example": "Priya Raman", "daniel.okafor@initech.example": "Daniel Okafor",
    "oliver.grant@initech.example": "Oliver Grant", "ken.ito@umbrella-corp.example": "伊藤 健",
    "kenito.home@gmail.com": "Ken Ito", "akiko.sato@umbrella-corp.example": "Akiko Sato",
    "raj.patel@hooli.example": "Raj Patel", "emma.wilson@hooli.example": "Emma Wilson",
    "no-reply@hooli.example": "Hooli Notifications", "grace.park@vandelay.example": "Grace Park",
    "l.fischer@massive-dynamic.example": "Lena Fischer", "newsletter@saas-weekly.example": "SaaS Weekly",
    "jamie.rivera84@gmail.com": "Jamie Rivera",
}
_ZONES: dict[str, str] = {  # the sender's local time zone, for realistic Date headers
    "acme.example": "America/Phoenix", "globex.example": "Europe/Berlin",
    "initech.example": "America/Chicago", "umbrella-corp.example": "Asia/Tokyo",
    "hooli.example": "America/Los_Angeles", INTERNAL_DOMAIN: "America/New_York",
}
_PDF = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
        b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
_MALFORMED = (b"Return-Path: <bounce-7781@mx.globex.example>\n"
              b"Received: from mx.globex.example ([192.0.2.17])\nX-Spam-Score: \x00\x00\xff\xfe\x9c\x81\x00\n"
              + bytes(range(256)) + b"\nSubject: Q4 forec")


class _Box:
    """The messages of one rep's Maildir, in delivery order: (relative path, bytes, Date)."""

    def __init__(self) -> None:
        self.files: list[tuple[str, bytes, datetime | None]] = []

    def add(self, msg: EmailMessage, *, sent: bool = False, unread: bool = False) -> None:
        local = str(msg["Message-ID"]).strip("<>").partition("@")[0]
        name = f"{len(self.files) + 1:03d}.{local}.demo"
        path = f"new/{name}" if unread else f"cur/{name}{_COLON}2,S"
        _fix_boundaries(msg, local)
        date = msg["Date"].datetime if msg["Date"] else None
        self.files.append(((".Sent/" if sent else "") + path, msg.as_bytes(), date))


class _Sample:
    """Builds both reps' mail and calendars for one ``now``."""

    def __init__(self, now: datetime) -> None:
        now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
        self.now = now.replace(second=0, microsecond=0)
        self.today = self.now.date()
        self.boxes = {"alice": _Box(), "bob": _Box()}

    def ago(self, days: int, hours: int = 0, minutes: int = 0) -> datetime:
        return self.now - timedelta(days=days, hours=hours, minutes=minutes)

    def day(self, offset: int, hour: int, minute: int = 0, tz: tzinfo = UTC) -> datetime:
        """A wall-clock time ``offset`` days from today (never today, so past/future is unambiguous)."""
        return datetime.combine(self.today + timedelta(days=offset), time(hour, minute), tz)


def _addr(email: str) -> Address:
    return Address(_NAMES.get(email, ""), addr_spec=email)


def _fix_boundaries(msg: EmailMessage, seed: str) -> None:
    """MIME boundaries are random by default; fixed ones keep the output byte-for-byte reproducible."""
    for i, part in enumerate(p for p in msg.walk() if p.is_multipart()):
        part.set_boundary(f"----=_Part_{seed}_{i}")


def _mail(mid: str, sender: str, to: Sequence[str], subject: str, at: datetime, text: str | None, *,
          cc: Sequence[str] = (), parent: EmailMessage | None = None, html: str | None = None,
          headers: dict[str, str] | None = None) -> EmailMessage:
    msg = EmailMessage()
    zone = ZoneInfo(_ZONES.get(sender.rpartition("@")[2], "UTC"))
    msg["Message-ID"] = f"<{mid}>"
    msg["Date"] = format_datetime(at.astimezone(zone))
    msg["From"] = _addr(sender)
    msg["To"] = [_addr(a) for a in to]
    if cc:
        msg["Cc"] = [_addr(a) for a in cc]
    msg["Subject"] = subject
    if parent is not None:
        msg["In-Reply-To"] = parent["Message-ID"]
        msg["References"] = " ".join([*str(parent.get("References", "")).split(), str(parent["Message-ID"])])
    for key, value in (headers or {}).items():
        msg[key] = value
    if text is not None:
        msg.set_content(text)
    if html is not None:
        if text is None:
            msg.set_content(html, subtype="html")
        else:
            msg.add_alternative(html, subtype="html")
    return msg


def _reply(mid: str, sender: str, to: Sequence[str], parent: EmailMessage, at: datetime, text: str, *,
           cc: Sequence[str] = (), headers: dict[str, str] | None = None) -> EmailMessage:
    subject = str(parent["Subject"])
    subject = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    return _mail(mid, sender, to, subject, at, text, cc=cc, parent=parent, headers=headers)


def _outlook_thread(msg: EmailMessage, topic: str, depth: int) -> None:
    """Outlook's conversation headers: a 22-byte root plus 5 bytes per reply, base64-encoded."""
    digest = sha256(topic.encode()).digest() * 2
    msg["Thread-Topic"] = topic
    msg["Thread-Index"] = b64encode(digest[: 22 + 5 * depth]).decode()


def _docx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, body in (("[Content_Types].xml", "<Types/>"), ("word/document.xml", "<w:document/>")):
            z.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), body)
    return buf.getvalue()


def _acme(s: _Sample) -> None:
    """A plain thread, a .docx sent to the participants, an out-of-office reply, a subdomain sender."""
    alice = s.boxes["alice"]
    carol, peter = "carol.diaz@acme.example", "peter.novak@acme.example"
    m1 = _mail("acme-agenda-1@mail.acme.example", carol, [ALICE],
               "Agenda for the fleet telematics presentation", s.ago(9, 3),
               "Hi Alice,\n\nhere is our agenda proposal for the presentation.\n\nCarol")
    m2 = _reply("acme-agenda-2@northwind-sales.example", ALICE, [carol], m1, s.ago(9, 1),
                "Thanks Carol, the agenda works for us. I will bring a live demo.\n\nAlice", cc=[peter])
    m3 = _reply("acme-agenda-3@mail.acme.example", carol, [ALICE], m2, s.ago(8, 20),
                "Perfect, see you then.\n\nCarol", cc=[peter])
    sow = _mail("acme-sow-1@northwind-sales.example", ALICE, [carol, peter],
                "Presentation slides and draft statement of work", s.ago(6, 5),
                "Hello both,\n\nthank you for your time today. The draft SOW is attached.\n\nAlice")
    sow.add_attachment(_docx(), maintype="application", filename="Acme_SOW_draft.docx",
                       subtype="vnd.openxmlformats-officedocument.wordprocessingml.document")
    ooo = _reply("acme-ooo-1@mail.acme.example", peter, [ALICE], sow, s.ago(6, 4, 59),
                 "I am out of the office until Monday with limited access to email.",
                 headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"})
    ooo.replace_header("Subject", "Automatic reply: Presentation slides and draft statement of work")
    back = _reply("acme-sow-2@mail.acme.example", peter, [ALICE], sow, s.ago(2, 6),
                  "Alice, we reviewed the SOW; two comments inline. Peter", cc=[carol])
    eu = _mail("acme-eu-1@eu.acme.example", "luis.moreno@eu.acme.example", [ALICE],
               "EU depot list for the rollout", s.ago(4, 2),
               "Hello Alice,\n\nCarol asked me to send you our European depots.\n\nLuis")
    for msg in (m1, m2, m3, sow, ooo, back, eu):
        alice.add(msg, sent=msg is m2 or msg is sow)


def _globex(s: _Sample) -> None:
    """Two open opportunities: a reply linked by thread, a review-queue item, a tracking token, a PDF."""
    alice = s.boxes["alice"]
    dieter, hans, topic = "dieter.klein@globex.example", "hans.mueller@globex.example", "ERP integration"
    m1 = _mail("globex-erp-1@mail.globex.example", dieter, [ALICE], "ERP integration: list of interfaces",
               s.ago(20, 4), "Dear Alice,\n\nplease find the list of interfaces below.\n\nDieter")
    m2 = _reply("globex-erp-2@northwind-sales.example", ALICE, [dieter], m1, s.ago(19, 22),
                "Thank you Dieter. Hans, could you confirm the budget owner?\n\nAlice", cc=[hans])
    m3 = _reply("globex-erp-3@mail.globex.example", hans, [ALICE], m2, s.ago(19, 2),
                "Hello Alice, I am the budget owner for this project.\n\nHans Müller")
    for depth, msg in enumerate((m1, m2, m3)):
        _outlook_thread(msg, topic, depth)
    review = _mail("globex-admin-1@mail.globex.example", "julia.braun@globex.example", [ALICE],
                   "New invoice address from January", s.ago(5, 3),
                   "Dear Ms Martin,\n\nplease send invoices to our new address from January on.\n\nJulia")
    # Opportunity id 3 = the 3rd row of opportunities.csv (ids are assigned in CSV order on a fresh database).
    token = _mail("globex-budget-1@mail.globex.example", hans, [ALICE],
                  "[OPP-3] Budget for the support renewal", s.ago(4, 7),
                  "Alice, the budget for next year's support is approved.\n\nHans")
    proposal = _mail("globex-proposal-1@northwind-sales.example", ALICE, ["sabine.wolf@globex.example"],
                     "Proposal: Globex support renewal", s.ago(3, 2),
                     "Dear Sabine,\n\nplease find our proposal attached.\n\nKind regards\nAlice Martin")
    proposal.add_attachment(_PDF, maintype="application", subtype="pdf",
                            filename="Globex_Support_Renewal_Proposal.pdf")
    for msg in (m1, m2, m3, review, token, proposal):
        alice.add(msg, sent=msg is m2 or msg is proposal)


def _skipped(s: _Sample) -> None:
    """Mail that must not be logged: bulk, automated, internal-only, private."""
    alice, bob = s.boxes["alice"], s.boxes["bob"]
    news = _mail("issue-112@news.saas-weekly.example", "newsletter@saas-weekly.example", [ALICE],
                 "SaaS Weekly #112: pipeline hygiene", s.ago(1, 9), "Five tips for pipeline hygiene.",
                 html="<h1>SaaS Weekly #112</h1><p>Five tips for pipeline hygiene.</p>",
                 headers={"List-Id": "SaaS Weekly <weekly.saas-weekly.example>", "Precedence": "bulk",
                          "List-Unsubscribe": "<mailto:unsubscribe@saas-weekly.example?subject=alice>, "
                                              "<https://saas-weekly.example/u/alice>",
                          "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
    notify = _mail("ticket-4471@notifications.hooli.example", "no-reply@hooli.example", [ALICE],
                   "Your Hooli support ticket #4471 was updated", s.ago(7, 1), "Ticket #4471: Resolved.",
                   headers={"Auto-Submitted": "auto-generated", "Precedence": "bulk"})
    internal = _mail("pipeline-1@northwind-sales.example", BOB, [ALICE], "Pipeline review on Friday",
                     s.ago(2, 3),
                     "Alice, can we go through the Globex and Hooli deals on Friday?\n\nBob")
    private = _mail("CAF7d-dinner-1@mail.gmail.com", "jamie.rivera84@gmail.com", [ALICE],
                    "Dinner on Saturday?", s.ago(1, 4), "Hey Alice, are we still on for Saturday? Jamie")
    handover = _mail("handover-1@northwind-sales.example", ALICE, [BOB], "Handover notes: Umbrella",
                     s.ago(10, 1),
                     "Bob, Umbrella is yours from now on; notes below.\n\nAlice")
    alice.add(news, unread=True)
    alice.add(notify)
    alice.add(internal)
    alice.add(private, unread=True)
    bob.add(handover)


def _hooli(s: _Sample) -> None:
    """A mail CC'd to both reps (one activity), its thread, an emailed invitation and its cancellation."""
    alice, bob = s.boxes["alice"], s.boxes["bob"]
    raj, emma = "raj.patel@hooli.example", "emma.wilson@hooli.example"
    shared = _mail(SHARED_MESSAGE_ID.strip("<>"), raj, [BOB], "Licence agreement: redlines from legal",
                   s.ago(5, 1), "Bob, Alice,\n\nour legal team's redlines are below.\n\nRaj",
                   cc=[ALICE, emma])
    r1 = _reply("hooli-redlines-2@northwind-sales.example", BOB, [raj], shared, s.ago(4, 20),
                "Thanks Raj, we accept most of them; comments below.\n\nBob", cc=[emma])
    r2 = _reply("hooli-redlines-3@mail.hooli.example", emma, [BOB], r1, s.ago(3, 5),
                "Bob, clause 7 still needs work. Emma", cc=[raj])
    alice.add(shared)
    for msg, sent in ((shared, False), (r1, True), (r2, False)):
        bob.add(msg, sent=sent)
    for seq, (mid, verb, at) in enumerate((("hooli-invite-1", "Invitation", s.ago(6, 3)),
                                           ("hooli-invite-2", "Canceled", s.ago(1, 2)))):
        method = "CANCEL" if seq else "REQUEST"
        msg = _mail(f"{mid}@mail.hooli.example", raj, [BOB], f"{verb}: Hooli contract review", at,
                    f"{verb}: Hooli contract review\nWhen: see the attached invitation.")
        ics = _invitation_ics(s, method, seq, at)
        msg.add_alternative(ics, subtype="calendar", params={"method": method})
        bob.add(msg, unread=bool(seq))


def _bob_customers(s: _Sample) -> None:
    """Initech, Umbrella, leads: auto-created contact, public address, non-ASCII HTML, unsafe file name."""
    bob, ken = s.boxes["bob"], "kenito.home@gmail.com"
    priya, daniel = "priya.raman@initech.example", "daniel.okafor@initech.example"
    m1 = _mail("initech-scope-1@mail.initech.example", priya, [BOB], "Data migration: scope questions",
               s.ago(13, 3), "Hi Bob,\n\nthree questions on the migration scope.\n\nPriya", cc=[daniel])
    m2 = _reply("initech-scope-2@northwind-sales.example", BOB, [priya], m1, s.ago(12, 23),
                "Hi Priya, answers inline.\n\nBob", cc=[daniel])
    colleague = _mail("initech-export-1@mail.initech.example", "oliver.grant@initech.example", [BOB],
                      "Sample exports from the legacy system", s.ago(9, 6),
                      "Hello Bob,\n\nDaniel asked me to send you sample exports.\n\nOliver", cc=[daniel])
    colleague.add_attachment(b"id;name\n1;Widget\n", maintype="text", subtype="csv",
                             filename="legacy_sample.csv")
    followup = _mail("initech-followup-1@northwind-sales.example", BOB, [daniel],
                     "Follow-up: migration scoping", s.ago(4, 1),
                     "Daniel, as discussed on the call, next steps below.\n\nBob")
    gmail = _mail("CAK9ito-lab-visit@mail.gmail.com", ken, [BOB], "Lab visit next month", s.ago(8, 12),
                  "Bob, writing from my personal address: can we plan the lab visit? Ken")
    html = _mail("umbrella-summary-1@umbrella-corp.example", "ken.ito@umbrella-corp.example", [BOB],
                 "Résumé de notre appel – 次のステップ", s.ago(5, 14), None,
                 html="<html><body><p>Bob-san,</p><p>次のステップ: <b>pilot in Q1</b>.</p></body></html>")
    unsafe = _mail("umbrella-export-1@umbrella-corp.example", "akiko.sato@umbrella-corp.example", [BOB],
                   "Inventory export you asked for", s.ago(2, 9), "Bob, the export is attached. Akiko")
    unsafe.add_attachment(b"asset;room\nA-17;Lab 3\n", maintype="text", subtype="plain",
                          filename="../../etc/passwd")
    lead = _mail("vandelay-expo-1@vandelay.example", "grace.park@vandelay.example", [BOB],
                 "Great meeting you at the Expo", s.ago(16, 5), "Hi Bob, great to meet you. Grace")
    for msg, sent in ((m1, False), (m2, True), (colleague, False), (followup, True), (gmail, False),
                      (html, False), (unsafe, False), (lead, False)):
        bob.add(msg, sent=sent)
    lena = _mail("lena-intro-1@massive-dynamic.example", "l.fischer@massive-dynamic.example", [ALICE],
                 "Introduction via Stefan – fleet analytics", s.ago(11, 2), "Dear Alice, Stefan sent me.")
    s.boxes["alice"].add(lena)


def _cal_addr(email: str, attendee: bool = True) -> vCalAddress:
    addr = vCalAddress(f"mailto:{email}")
    addr.params["CN"] = _NAMES.get(email, email)
    if attendee:
        addr.params.update({"ROLE": "REQ-PARTICIPANT", "PARTSTAT": "ACCEPTED"})
    return addr


def _event(s: _Sample, uid: str, summary: str, start: datetime, minutes: int, organizer: str,
           attendees: Sequence[str] = (), **props: object) -> Event:
    ev = Event()
    ev.add("uid", uid)
    ev.add("dtstamp", s.now)
    ev.add("dtstart", start)
    ev.add("dtend", start + timedelta(minutes=minutes))
    ev.add("summary", summary)
    ev.add("organizer", _cal_addr(organizer, attendee=False))
    for email in attendees:
        ev.add("attendee", _cal_addr(email))
    ev.add("sequence", 1 if props.get("status") == "CANCELLED" else 0)
    for key, value in {"status": "CONFIRMED", **props}.items():
        ev.add(key.replace("_", "-"), value)
    return ev


def _invitation_ics(s: _Sample, method: str, sequence: int, sent: datetime) -> str:
    cal = Calendar()
    cal.add("prodid", "-//Hooli//Calendar 4.2//EN")
    cal.add("version", "2.0")
    cal.add("method", method)
    ev = _event(s, INVITATION_UID, "Hooli contract review", s.day(10, 17), 60, "raj.patel@hooli.example",
                [BOB], status="CANCELLED" if method == "CANCEL" else "CONFIRMED", location="Hooli HQ, 4B")
    for key, value in (("sequence", sequence), ("dtstamp", sent)):
        ev.pop(key)
        ev.add(key, value)
    ev["attendee"].params.update({"PARTSTAT": "NEEDS-ACTION", "RSVP": "TRUE"})
    cal.add_component(ev)
    return cal.to_ical().decode()


def _shared_meeting(s: _Sample) -> Event:
    return _event(s, "hooli-pricing-alignment@northwind-sales.example", "Hooli pricing alignment",
                  s.day(1, 16), 30, BOB, [ALICE, "raj.patel@hooli.example"])


def _calendar(name: str, events: Sequence[Event]) -> bytes:
    cal = Calendar()
    cal.add("prodid", "-//Northwind Sales//crm-sync demo//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", f"{name} – Calendar")
    for ev in events:
        cal.add_component(ev)
    cal.add_missing_timezones()
    return cal.to_ical()


def _alice_calendar(s: _Sample) -> bytes:
    berlin = ZoneInfo("Europe/Berlin")
    dieter, carol = "dieter.klein@globex.example", "carol.diaz@acme.example"
    peter = "peter.novak@acme.example"
    start = s.day(-40, 15)
    series = _event(s, RECURRING_UID, "Acme weekly steering", start, 30, ALICE, [carol],
                    rrule={"freq": "weekly", "count": 10}, exdate=start + timedelta(weeks=2))
    moved = _event(s, RECURRING_UID, "Acme weekly steering (moved)", s.day(-11, 16), 30, ALICE, [carol],
                   recurrence_id=start + timedelta(weeks=4))
    return _calendar("Alice Martin", [
        _event(s, "globex-erp-workshop@northwind-sales.example", "Globex ERP requirements workshop",
               s.day(-10, 10, tz=berlin), 120, ALICE, [dieter, "hans.mueller@globex.example"],
               location="Globex HQ, Berlin"),
        _event(s, "acme-presentation@northwind-sales.example", "Presentation: Acme fleet telematics platform",
               s.day(-7, 14), 90, ALICE, [carol, peter], location="Acme, Phoenix"),
        _event(s, "call-dieter-interfaces@northwind-sales.example", "Call Dieter Klein – interface questions",
               s.day(-2, 13), 30, ALICE, [dieter]),
        _event(s, "globex-proposal-walkthrough@northwind-sales.example", "Globex support renewal: proposal "
               "walkthrough", s.day(5, 9), 60, ALICE, ["sabine.wolf@globex.example"]),
        _event(s, "acme-depot-visit@northwind-sales.example", "Acme depot site visit", s.day(12, 16), 180,
               ALICE, ["maria.lopez@acme.example"], status="CANCELLED"),
        series, moved,
        _event(s, "pipeline-review@northwind-sales.example", "Pipeline review", s.day(-1, 20), 60, ALICE,
               [BOB]),
        _shared_meeting(s),
    ])


def _bob_calendar(s: _Sample) -> bytes:
    priya, daniel = "priya.raman@initech.example", "daniel.okafor@initech.example"
    ken = "ken.ito@umbrella-corp.example"
    return _calendar("Bob Chen", [
        _event(s, "initech-scoping-call@northwind-sales.example", "Initech – migration scoping",
               s.day(-4, 16), 30, BOB, location="tel:+1-202-555-0100"),
        _event(s, "umbrella-intro-call@northwind-sales.example", "Umbrella – introduction", s.day(-6, 1), 30,
               BOB, [ken], categories=["Phone call"]),
        _event(s, "initech-solution-workshop@northwind-sales.example", "Initech data migration – solution "
               "workshop", s.day(8, 15), 120, BOB, [priya, daniel], location="Initech, Austin"),
        _event(s, "vandelay-coffee@northwind-sales.example", "Coffee with Grace Park (Vandelay Imports)",
               s.day(-15, 17), 45, BOB, ["grace.park@vandelay.example"]),
        _event(s, "umbrella-lab-tour@northwind-sales.example", "Umbrella lab tour", s.day(3, 0), 120, BOB,
               [ken, "akiko.sato@umbrella-corp.example"], status="CANCELLED"),
        _event(s, "initech-checkin-weekly@northwind-sales.example", "Initech migration check-in",
               s.day(-17, 14), 30, BOB, [priya, daniel], rrule={"freq": "weekly", "count": 6}),
        _event(s, "team-lunch@northwind-sales.example", "Sales team lunch", s.day(-3, 17), 60, BOB, [ALICE]),
        _shared_meeting(s),
    ])


def _write_maildir(root: Path, box: _Box, calendar: bytes, now: datetime) -> None:
    for sub in ("", ".Sent/"):
        for part in ("cur", "new", "tmp"):
            (root / sub / part).mkdir(parents=True, exist_ok=True)
    (root / ".Sent" / "maildirfolder").touch()
    for rel, data, date in box.files:
        tmp = root / Path(rel).parent.parent / "tmp" / Path(rel).name
        tmp.write_bytes(data)
        os.replace(tmp, root / rel)  # Maildir delivery: write in tmp/, then move into place
        stamp = (date or now).timestamp()
        os.utime(root / rel, (stamp, stamp))
    (root / "calendar.ics").write_bytes(calendar)


def write_sample_mailboxes(target: Path, now: datetime) -> dict[str, Path]:
    """Write one Maildir per rep under target (target/alice, target/bob) and return {mailbox name: path}.

    Files with the same names are overwritten, nothing else is touched; the file names do not depend on
    ``now``, so writing again into the same folder does not duplicate messages.
    """
    s = _Sample(now)
    for scenario in (_acme, _globex, _skipped, _hooli, _bob_customers):
        scenario(s)
    paths = {name: Path(target) / name for name in s.boxes}
    _write_maildir(paths["alice"], s.boxes["alice"], _alice_calendar(s), s.now)
    _write_maildir(paths["bob"], s.boxes["bob"], _bob_calendar(s), s.now)
    malformed = paths["alice"] / MALFORMED_FILE
    malformed.write_bytes(_MALFORMED)
    os.utime(malformed, (s.now.timestamp(), s.now.timestamp()))
    return paths

"""Small builders for tests: messages, Maildirs, calendars and a seeded CRM."""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from sqlalchemy.orm import Session

from crm_store.models import (
    Account,
    AccountDomain,
    Contact,
    ContactEmail,
    Lead,
    LeadEmail,
    Opportunity,
    OpportunityParticipant,
    User,
)

REP = "alice@northwind-sales.example"
REP2 = "bob@northwind-sales.example"


def message(
    mid: str,
    sender: str,
    to: list[str],
    subject: str,
    *,
    at: datetime | None = None,
    body: str = "Hello",
    cc: list[str] | None = None,
    in_reply_to: str | None = None,
    headers: dict[str, str] | None = None,
    attachment: tuple[str, bytes, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["Message-ID"] = f"<{mid}>"
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(at or datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
        msg["References"] = f"<{in_reply_to}>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    if attachment:
        name, data, media = attachment
        maintype, _, subtype = media.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


def maildir(path: Path, messages: list[bytes], sent: list[bytes] | None = None) -> Path:
    box = mailbox.Maildir(path, create=True)
    for raw in messages:
        box.add(raw)
    if sent:
        sub = box.add_folder("Sent")
        for raw in sent:
            sub.add(raw)
    return path


def ics(*events: str, method: str | None = None) -> bytes:
    head = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//tests//EN"]
    if method:
        head.append(f"METHOD:{method}")
    return ("\r\n".join([*head, *events, "END:VCALENDAR"]) + "\r\n").encode()


def invitation_email(
    mid: str,
    method: str,
    sequence: int,
    uid: str,
    summary: str,
    start: datetime,
    *,
    organizer: str,
    to: str = REP,
    extra: tuple[str, ...] = (),
) -> bytes:
    """An invitation as mail: a text/calendar ``method`` part (REQUEST, CANCEL) for one event from ``organizer``
    to ``to``, at SEQUENCE ``sequence``; a CANCEL's event is also STATUS:CANCELLED."""
    msg = EmailMessage()
    msg["Message-ID"] = f"<{mid}>"
    msg["From"], msg["To"], msg["Subject"] = organizer, to, f"Invitation: {summary}"
    msg.set_content("Invitation")
    status = ("STATUS:CANCELLED",) if method == "CANCEL" else ()
    event = vevent(
        uid, summary, start, organizer=organizer, attendees=(to,), extra=(f"SEQUENCE:{sequence}", *status, *extra)
    )
    msg.add_alternative(ics(event, method=method).decode(), subtype="calendar", params={"method": method})
    return msg.as_bytes()


def vevent(
    uid: str,
    summary: str,
    start: datetime,
    minutes: int = 60,
    *,
    attendees: tuple[str, ...] = (),
    organizer: str = REP,
    extra: tuple[str, ...] = (),
) -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    lines = [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{start.strftime(fmt)}",
        f"DTSTART:{start.strftime(fmt)}",
        f"DTEND:{(start + timedelta(minutes=minutes)).strftime(fmt)}",
        f"SUMMARY:{summary}",
        f"ORGANIZER:mailto:{organizer}",
        *(f"ATTENDEE:mailto:{a}" for a in attendees),
        *extra,
        "END:VEVENT",
    ]
    return "\r\n".join(lines)


def seed_crm(session: Session) -> dict[str, int]:
    """Two reps; ACME (one open opportunity) and Globex (two open ones); contacts and a lead."""
    alice, bob = User(email=REP, name="Alice"), User(email=REP2, name="Bob")
    acme = Account(name="ACME", name_key="acme", type="customer", owner=alice)
    acme.domains.append(AccountDomain(domain="acme.example"))
    globex = Account(name="Globex", name_key="globex", type="prospect", owner=bob)
    globex.domains.append(AccountDomain(domain="globex.example"))
    session.add_all([alice, bob, acme, globex])
    session.flush()

    def contact(name: str, account: Account, *emails: str) -> Contact:
        c = Contact(name=name, account_id=account.id)
        c.emails.extend(ContactEmail(email=e, position=i) for i, e in enumerate(emails))
        session.add(c)
        return c

    wile = contact("Wile Coyote", acme, "wile@acme.example", "wile.private@gmail.com")
    hank = contact("Hank Scorpio", globex, "hank@globex.example")
    mindy = contact("Mindy Globex", globex, "mindy@globex.example")
    lead = Lead(name="Rita Lead", company="Initrode", status="Initial Lead")
    lead.emails.append(LeadEmail(email="rita@initrode.example"))
    session.add(lead)
    session.flush()
    rockets = Opportunity(title="Rockets", account_id=acme.id, stage="Presentation", owner_id=alice.id)
    rockets.participants.append(OpportunityParticipant(contact_id=wile.id))
    lamp = Opportunity(title="Hammock lamps", account_id=globex.id, stage="Qualification", owner_id=bob.id)
    lamp.participants.append(OpportunityParticipant(contact_id=hank.id))
    domes = Opportunity(title="Domes", account_id=globex.id, stage="Negotiations", owner_id=bob.id)
    domes.participants.append(OpportunityParticipant(contact_id=hank.id))
    session.add_all([rockets, lamp, domes])
    session.flush()
    return {
        "alice": alice.id,
        "bob": bob.id,
        "acme": acme.id,
        "globex": globex.id,
        "wile": wile.id,
        "hank": hank.id,
        "mindy": mindy.id,
        "lead": lead.id,
        "rockets": rockets.id,
        "lamp": lamp.id,
        "domes": domes.id,
    }

"""One rep's mailbox, written twice: into the loopback EWS server and into a Maildir with a ``calendar.ics``.

The same messages (identical MIME) and the same meetings: a weekly series with a moved occurrence (an
exception), a cancelled occurrence and a deleted one (EXDATE / DeletedOccurrences), a single meeting ahead
and a phone call. Both sources must end up as the same CRM activities.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.builders import REP, ics, maildir, message, vevent
from tests.support.ews_store import Event, EwsStore

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
WILE, HANK = "wile@acme.example", "hank@globex.example"
_FMT = "%Y%m%dT%H%M%SZ"

SERIES_START = NOW - timedelta(weeks=3, hours=2)
SERIES_UID = "a-steering@northwind-sales.example"
MOVED, CANCELLED, DELETED = 2, 4, 5  # 1-based occurrence indexes
MOVED_BY = timedelta(days=1, hours=2)


def inbox() -> list[bytes]:
    return [
        message("e1@acme.example", WILE, [REP], "Rocket specs", at=NOW - timedelta(days=5)),
        message("e2@globex.example", HANK, [REP], "Lamp question", at=NOW - timedelta(days=4)),
        message("e3@initrode.example", "rita@initrode.example", [REP], "Intro", at=NOW - timedelta(days=3)),
        message(
            "e4@news.example",
            "news@news.example",
            [REP],
            "Newsletter",
            at=NOW - timedelta(days=3),
            headers={"List-Unsubscribe": "<mailto:off@news.example>"},
        ),
        message(
            "e5@acme.example",
            WILE,
            [REP],
            "Re: Rocket specs",
            at=NOW - timedelta(days=2),
            in_reply_to="e1@acme.example",
        ),
    ]


def sent() -> list[bytes]:
    return [
        message(
            "s1@northwind-sales.example",
            REP,
            [WILE],
            "Proposal",
            at=NOW - timedelta(days=1),
            attachment=("proposal.pdf", b"%PDF-1.4 offer", "application/pdf"),
        ),
        message(
            "s2@northwind-sales.example", REP, ["bob@northwind-sales.example"], "Lunch?", at=NOW - timedelta(hours=5)
        ),
    ]


def _series_event() -> Event:
    moved = SERIES_START + timedelta(weeks=MOVED - 1) + MOVED_BY
    return Event(
        uid=SERIES_UID,
        subject="Steering committee",
        start=SERIES_START,
        end=SERIES_START + timedelta(hours=1),
        organizer=REP,
        required=(WILE,),
        every=timedelta(weeks=1),
        count=6,
        exceptions={MOVED: {"start": moved, "end": moved + timedelta(hours=1)}, CANCELLED: {"cancelled": True}},
        deleted={DELETED},
    )


def _single_events() -> list[Event]:
    demo = NOW + timedelta(days=4)
    call = NOW - timedelta(days=1, hours=3)
    return [
        Event(
            uid="b-demo@northwind-sales.example",
            subject="Rocket demo",
            start=demo,
            end=demo + timedelta(hours=1),
            organizer=REP,
            required=(WILE,),
            location="ACME HQ",
        ),
        Event(
            uid="c-call@northwind-sales.example",
            subject="Call Hank about lamps",
            start=call,
            end=call + timedelta(minutes=30),
            organizer=REP,
            required=(HANK,),
        ),
    ]


def fill_ews(store: EwsStore, mailbox: str = REP) -> dict[str, str]:
    """Put the scenario into ``mailbox`` on the EWS server; returns the calendar item ids by UID."""
    for raw in inbox():
        store.add(mailbox, "inbox", "message", mime=raw)
    for raw in sent():
        store.add(mailbox, "sentitems", "message", mime=raw, is_read=True)
    return {e.uid: store.add(mailbox, "calendar", "calendar", event=e) for e in [_series_event(), *_single_events()]}


def _occurrence_start(index: int) -> datetime:
    return SERIES_START + timedelta(weeks=index - 1)


def calendar_ics() -> bytes:
    """The same meetings as one iCalendar file (UIDs in the order the EWS connector lists its series)."""
    series = vevent(
        SERIES_UID,
        "Steering committee",
        SERIES_START,
        attendees=(WILE,),
        extra=("RRULE:FREQ=WEEKLY;COUNT=6", f"EXDATE:{_occurrence_start(DELETED).strftime(_FMT)}"),
    )
    moved_from = _occurrence_start(MOVED)
    moved = vevent(
        SERIES_UID,
        "Steering committee",
        moved_from + MOVED_BY,
        attendees=(WILE,),
        extra=(f"RECURRENCE-ID:{moved_from.strftime(_FMT)}",),
    )
    cancelled_at = _occurrence_start(CANCELLED)
    cancelled = vevent(
        SERIES_UID,
        "Steering committee",
        cancelled_at,
        attendees=(WILE,),
        extra=(f"RECURRENCE-ID:{cancelled_at.strftime(_FMT)}", "STATUS:CANCELLED"),
    )
    singles = [
        vevent(
            e.uid,
            e.subject,
            e.start,
            int((e.end - e.start).total_seconds() // 60),
            attendees=e.required,
            extra=(f"LOCATION:{e.location}",) if e.location else (),
        )
        for e in _single_events()
    ]
    return ics(series, moved, cancelled, *singles)


def fill_maildir(path: Path) -> Path:
    box = maildir(path, inbox(), sent=sent())
    (box / "calendar.ics").write_bytes(calendar_ics())
    return box

"""An all-day series organised in a time zone, for the loopback EWS server and as iCalendar: what the EWS
connector tests, the pipeline test (one activity per occurrence from Exchange and from a calendar file) and the
upgrade test of migration 0015 (re-keying what was stored before) share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sync_service.values import SyncWindow
from tests.support.builders import REP, ics
from tests.support.ews_store import Event

WILE = "wile@acme.example"
TODAY = datetime.now(UTC).date()
WINDOW = SyncWindow.around(datetime.combine(TODAY, time(), UTC))
# IANA zone → the Windows id Exchange names it by (StartTimeZone)
ZONES = {
    "Europe/Berlin": "W. Europe Standard Time",
    "Asia/Tokyo": "Tokyo Standard Time",
    "Europe/London": "GMT Standard Time",  # east of UTC in summer only
    "America/New_York": "Eastern Standard Time",  # west of UTC: right before the fix too (the control)
}


@dataclass(frozen=True)
class AllDaySeries:
    """An all-day series organised in ``iana``: for the EWS server (``event``) and as iCalendar (``ics``)."""

    uid: str
    iana: str
    first: date
    count: int
    every_days: int = 7
    moved: dict[int, int] = field(default_factory=dict)  # 1-based index → days it was moved by
    cancelled: frozenset[int] = frozenset()
    deleted: frozenset[int] = frozenset()
    subject: str = "Trade fair"
    windows_zone: str = ""  # default: ZONES[iana]

    def original(self, index: int) -> date:
        return self.first + timedelta(days=self.every_days * (index - 1))

    def day(self, index: int) -> date:
        return self.original(index) + timedelta(days=self.moved.get(index, 0))

    def midnight(self, day: date) -> datetime:
        """The UTC instant of ``day``'s midnight in the series' zone (how EWS sends all-day bounds)."""
        return datetime.combine(day, time(), ZoneInfo(self.iana)).astimezone(UTC)

    def indexes(self) -> list[int]:
        return [i for i in range(1, self.count + 1) if i not in self.deleted]

    def expected(self) -> dict[str, date]:
        """recurrence id → the day of each occurrence (deleted ones left out)."""
        return {self.original(i).isoformat(): self.day(i) for i in self.indexes()}

    def event(self) -> Event:
        exceptions: dict[int, dict[str, object]] = {
            i: {"start": self.midnight(self.day(i)), "end": self.midnight(self.day(i) + timedelta(days=1))}
            for i in self.moved
        }
        for i in self.cancelled:
            exceptions.setdefault(i, {})["cancelled"] = True
        return Event(
            uid=self.uid,
            subject=self.subject,
            start=self.midnight(self.first),
            end=self.midnight(self.first + timedelta(days=1)),
            organizer=REP,
            required=(WILE,),
            all_day=True,
            timezone=self.windows_zone or ZONES[self.iana],
            every=timedelta(days=self.every_days),
            count=self.count,
            exceptions=exceptions,
            deleted=set(self.deleted),
        )

    def ics(self, method: str | None = None) -> bytes:
        """The same series as an iCalendar object (dates, no zone: as Outlook exports an all-day series)."""
        exdates = [f"EXDATE;VALUE=DATE:{self.original(i):%Y%m%d}" for i in sorted(self.deleted)]
        master = self._vevent(self.first, (f"RRULE:FREQ=DAILY;INTERVAL={self.every_days};COUNT={self.count}",
                                           *exdates))  # fmt: skip
        overrides = [
            self._vevent(
                self.day(i),
                (f"RECURRENCE-ID;VALUE=DATE:{self.original(i):%Y%m%d}",)
                + (("STATUS:CANCELLED",) if i in self.cancelled else ()),
            )
            for i in sorted(set(self.moved) | set(self.cancelled))
            if i not in self.deleted
        ]
        return ics(master, *overrides, method=method)

    def _vevent(self, day: date, extra: tuple[str, ...]) -> str:
        return "\r\n".join(
            [
                "BEGIN:VEVENT",
                f"UID:{self.uid}",
                "DTSTAMP:20260101T000000Z",
                f"DTSTART;VALUE=DATE:{day:%Y%m%d}",
                f"DTEND;VALUE=DATE:{day + timedelta(days=1):%Y%m%d}",
                f"SUMMARY:{self.subject}",
                f"ORGANIZER:mailto:{REP}",
                f"ATTENDEE:mailto:{WILE}",
                *extra,
                "END:VEVENT",
            ]
        )


def weekly(iana: str, uid: str = "") -> AllDaySeries:
    """36 weeks from 80 days back (so across a DST change where the zone has one), one occurrence moved a day
    later, one a day earlier, one cancelled and one deleted."""
    return AllDaySeries(
        uid=uid or f"fair-{iana.lower().replace('/', '-')}@northwind-sales.example",
        iana=iana,
        first=TODAY - timedelta(days=80),
        count=36,
        moved={3: 1, 20: -1},
        cancelled=frozenset({5}),
        deleted=frozenset({7}),
    )

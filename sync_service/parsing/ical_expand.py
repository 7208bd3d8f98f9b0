"""The occurrences of one recurring series inside a span, with work bounded by the limits (SPEC §6, audit 17a F3/F4).

``recurring_ical_events`` does the expansion (RDATE, EXDATE, moved and THISANDFUTURE occurrences, time zones);
two of its inputs are bounded here before it sees them, so that the work depends on the sync window and on
``CRM_MAX_OCCURRENCES``, not on the size of the input:

- **RDATE lists.** Only the values that can give an occurrence in the span are handed on, and of those the
  earliest ``keep`` (the cap plus one, so that "more than the cap" is still seen). 300,000 RDATEs cost one
  pass over the parsed values instead of 300,000 occurrences. EXDATE values outside the span are left out
  too (each one left costs a set entry only).
- **How far dateutil walks a rule.** dateutil walks a rule period by period from DTSTART and checks UNTIL and
  COUNT only on instants its BY-filters match: a rule that never matches again
  (``FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30``) is walked to the year 9999, seconds of CPU for each such series.
  ``WalkBoundedRule`` stops walking a month past the end of the span asked for: what lies beyond cannot be
  in it. It counts the months it enters through the one attribute dateutil reads each time it does
  (``_byeaster``, read by ``_iterinfo.rebuild``); if a future dateutil stopped reading it there, the count
  would simply stop bounding (``tests/parsing/test_s17_ical_bounds.py`` would say so).

How dense a rule may be is decided before, by ``ical._query_stop``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any

import icalendar
import recurring_ical_events
from dateutil.rrule import rrule
from recurring_ical_events.adapters.event import EventAdapter
from recurring_ical_events.selection.name import ComponentsWithName
from recurring_ical_events.series import Series

__all__ = ["Bounds", "WalkBoundedRule", "occurrences"]

_SLACK = timedelta(days=1)  # floating and all-day values are local somewhere: compare with a day to spare
_PAST_SPAN = timedelta(days=32)  # a rule is walked up to the month after the end of the span


@dataclass
class Bounds:
    """What one expansion may read: the span's start and stop (UTC), and how many RDATE values of one
    component to keep. ``left_out`` counts the RDATE values inside the span that were not kept."""

    start: datetime
    stop: datetime
    keep: int
    moved: timedelta = timedelta(0)  # the most an override moves an occurrence (RECURRENCE-ID → DTSTART)
    left_out: int = 0


def occurrences(series: icalendar.Component, bounds: Bounds) -> list[icalendar.Component]:
    """The earliest ``bounds.keep`` occurrences of the series in ``series`` (a VCALENDAR with its VTIMEZONEs and
    the VEVENTs of one UID) between ``bounds.start`` and ``bounds.stop``, in order of start. Only those are made
    into components (the costly part): the others are dropped as the library's light occurrence objects."""
    select = ComponentsWithName("VEVENT", adapter=_adapter(bounds), series=_BoundedSeries)
    query = recurring_ical_events.of(series, components=[select])
    found = [occurrence for one in query.series for occurrence in one.between(bounds.start, bounds.stop)]
    found.sort(key=lambda occurrence: _utc(occurrence.start) or bounds.start)
    return [occurrence.as_component(False) for occurrence in found[: bounds.keep]]


# --- RDATE / EXDATE ------------------------------------------------------------------------------------


def _adapter(bounds: Bounds) -> type[EventAdapter]:
    """An event adapter whose RDATE and EXDATE values are only those that can matter inside ``bounds``."""

    class BoundedEventAdapter(EventAdapter):
        @cached_property
        def rdates(self) -> list[Any]:
            values = EventAdapter.rdates.fget(self)
            kept = _in_span(values, bounds, self.duration)
            kept.sort(key=lambda pair: pair[0])
            bounds.left_out += max(0, len(kept) - bounds.keep)
            return [value for _start, value in kept[: bounds.keep]]

        @cached_property
        def exdates(self) -> list[Any]:
            values = EventAdapter.exdates.fget(self)
            return [value for _start, value in _in_span(values, bounds, self.duration)]

    return BoundedEventAdapter


def _in_span(values: list[Any], bounds: Bounds, duration: object) -> list[tuple[datetime, Any]]:
    """(UTC start, value) of the values (dates, date-times, PERIOD tuples) that may start an occurrence that
    overlaps the span: from a duration (and a day, and the largest move of an override) before its start to a
    day (and that move) after its stop."""
    reach = duration if isinstance(duration, timedelta) and duration > timedelta(0) else timedelta(0)
    low, high = bounds.start - reach - bounds.moved - _SLACK, bounds.stop + bounds.moved + _SLACK
    found = []
    for value in values:
        start = _utc(value[0] if isinstance(value, tuple) else value)
        if start is None or low <= start <= high:  # an unreadable value is left to the library to judge
            found.append((start or bounds.start, value))
    return found


def _utc(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    return None


# --- RRULE walks ---------------------------------------------------------------------------------------


class _WalkEnd(Exception):
    """Raised inside dateutil's walk once it entered more months than allowed; ends the walk."""


class WalkBoundedRule(rrule):
    """A dateutil ``rrule`` that stops walking past ``walk_to`` (see the module docstring).
    ``months_walked`` says how far the last walk went (the tests count work with it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._walk_left: int | None = None  # months the current walk may still enter; None: not walking
        self._months_allowed: int | None = None  # None: no bound
        self.months_walked = 0
        super().__init__(*args, **kwargs)

    def walk_to(self, end: date) -> None:
        """Walks from now on stop in the month after ``end``'s."""
        start = self._dtstart
        self._months_allowed = max(0, (end.year - start.year) * 12 + end.month - start.month) + 2

    @property
    def _byeaster(self) -> Any:
        # dateutil reads this once as a walk starts and once each time it enters a month (or a YEARLY year).
        if self._walk_left is not None:
            self.months_walked += 1
            self._walk_left -= 1
            if self._walk_left < 0:
                raise _WalkEnd
        return self._easter_offsets

    @_byeaster.setter
    def _byeaster(self, value: Any) -> None:
        self._easter_offsets = value

    def _iter(self) -> Any:
        allowed = self._months_allowed
        self.months_walked = 0
        self._walk_left = None if allowed is None else allowed + 1  # + the read as the walk starts
        try:
            yield from super()._iter()
        except _WalkEnd:
            return
        finally:
            self._walk_left = None

    @classmethod
    def like(cls, rule: rrule) -> WalkBoundedRule:
        """The same rule (as dateutil's ``replace`` copies one), bounded; without a cache, since a cached walk
        that ended at one span's end would answer a later, longer span short."""
        kwargs: dict[str, Any] = {
            "interval": rule._interval,
            "count": rule._count,
            "dtstart": rule._dtstart,
            "freq": rule._freq,
            "until": rule._until,
            "wkst": rule._wkst,
            "cache": False,
            **rule._original_rule,
        }
        bounded = cls(**kwargs)
        for name in ("string", "until"):  # what recurring_ical_events sets on the rules it makes
            if hasattr(rule, name):
                setattr(bounded, name, getattr(rule, name))
        return bounded


class _BoundedRules(Series.RecurrenceRules):
    def rrulestr(self, rule_string: str) -> rrule:
        return WalkBoundedRule.like(super().rrulestr(rule_string))


class _BoundedSeries(Series):
    RecurrenceRules = _BoundedRules

    def rrule_between(self, span_start: Any, span_stop: Any) -> Any:
        """Each query bounds the walks of the series' rules to the end of the span it asks for."""
        try:
            end = span_stop + self._add_to_stop + _PAST_SPAN
        except OverflowError:
            end = None
        for rule in getattr(self.recurrence, "rrules", ()):
            if isinstance(rule, WalkBoundedRule) and end is not None:
                rule.walk_to(end)
        yield from super().rrule_between(span_start, span_stop)

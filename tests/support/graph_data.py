"""What a test does to a fake Microsoft 365 mailbox: deliver / move / delete mail, schedule meetings and
series, move or cancel occurrences, edit contacts. Each call is one change the delta queries then report.

Event JSON follows the "event resource type" page (learn.microsoft.com/graph/api/resources/event): a
``calendarView`` lists single instances, and the ``occurrence`` / ``exception`` instances of a series with
``seriesMasterId``, ``originalStart`` (UTC) and a per-occurrence ``iCalUId``. Contact JSON follows the
"contact resource type" page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.graph_state import Collection, GraphState, global_object_id, graph_time, offset_time


class FakeMailbox:
    """Test-side handle on one mailbox of a :class:`GraphState` (thread-safe through ``lock``)."""

    def __init__(self, state: GraphState, lock: Any, upn: str, name: str = "") -> None:
        self.state, self.lock, self.upn = state, lock, upn.lower()
        with lock:
            state.mailbox(upn, name)

    # --- mail --------------------------------------------------------------------------------------------

    def deliver(self, mime: bytes, folder: str = "inbox") -> str:
        with self.lock:
            return self.state.put(self.upn, folder, None, self.state.message_body(mime), mime=mime).immutable_id

    def add_folder(self, name: str) -> None:
        """A mail folder besides ``inbox`` and ``sentitems`` (``archive``, a rep's own): its delta is served."""
        with self.lock:
            self.state.mailbox(self.upn).collections.setdefault(name, Collection(name))

    def move(self, item_id: str, source: str, target: str) -> None:
        """Move a message: it leaves ``source`` (``@removed`` there) and keeps its immutable id in ``target``."""
        with self.lock:
            item = self.state.mailbox(self.upn).collections[source].items[item_id]
            self.state.remove(self.upn, source, item_id)
            self.state.put(self.upn, target, item_id, item.body, mime=item.mime)

    def mark_read(self, item_id: str, folder: str = "inbox") -> None:
        with self.lock:
            item = self.state.mailbox(self.upn).collections[folder].items[item_id]
            self.state.put(self.upn, folder, item_id, {**item.body, "isRead": True}, mime=item.mime)

    def delete(self, item_id: str, folder: str = "inbox") -> None:
        with self.lock:
            self.state.remove(self.upn, folder, item_id)

    # --- calendar ----------------------------------------------------------------------------------------

    def _event(self, subject: str, start: datetime, end: datetime, ical_uid: str, **fields: Any) -> dict[str, Any]:
        attendees = [
            {"type": "required", "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
             "emailAddress": {"name": a.partition("@")[0].title(), "address": a}}
            for a in fields.pop("attendees", ())
        ]  # fmt: skip
        organizer = fields.pop("organizer", self.upn)
        location = fields.pop("location", "")
        body = {
            "@odata.type": "#microsoft.graph.event",
            "createdDateTime": "2026-01-01T00:00:00.0000000Z",
            "categories": list(fields.pop("categories", ())),
            "originalStartTimeZone": "UTC",
            "originalEndTimeZone": "UTC",
            "iCalUId": ical_uid,
            "reminderMinutesBeforeStart": 15,
            "isReminderOn": True,
            "hasAttachments": False,
            "subject": subject,
            "bodyPreview": fields.get("text", ""),
            "importance": "normal",
            "sensitivity": "normal",
            "isAllDay": False,
            "isCancelled": False,
            "isOrganizer": organizer == self.upn,
            "responseRequested": True,
            "seriesMasterId": None,
            "showAs": "busy",
            "type": "singleInstance",
            "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
            "body": {"contentType": "html", "content": f"<html><body><p>{fields.pop('text', '')}</p></body></html>"},
            "start": {"dateTime": graph_time(start), "timeZone": "UTC"},
            "end": {"dateTime": graph_time(end), "timeZone": "UTC"},
            "location": {"displayName": location, "locationType": "default", "uniqueIdType": "unknown"},
            "locations": [{"displayName": location}] if location else [],
            "recurrence": None,
            "attendees": attendees,
            "organizer": {"emailAddress": {"name": organizer.partition("@")[0].title(), "address": organizer}},
        }
        body.update(fields)
        return body

    def schedule(self, subject: str, start: datetime, minutes: int = 60, *, uid: str | None = None,
                 **fields: Any) -> str:  # fmt: skip
        """A single meeting; ``uid`` = the iCalendar UID of a meeting that came by invitation."""
        with self.lock:
            seed = hashlib.sha256(f"{self.upn}/{subject}/{start}".encode()).digest()
            goid = global_object_id(datetime(2026, 1, 1, tzinfo=UTC), None, uid, seed)
            end = start + timedelta(minutes=minutes)
            item = self.state.put(self.upn, "calendar", None, self._event(subject, start, end, goid, **fields),
                                  span=(start, end))  # fmt: skip
            return item.immutable_id

    def schedule_series(self, subject: str, starts: Iterable[datetime], minutes: int = 60, *,
                        uid: str | None = None, **fields: Any) -> dict[datetime, str]:  # fmt: skip
        """A recurring series as ``calendarView`` shows it: one occurrence per start; returns start → id."""
        with self.lock:
            master = self.state.new_id()
            seed = hashlib.sha256(f"{self.upn}/{subject}/series".encode()).digest()
            out = {}
            for start in starts:
                goid = global_object_id(datetime(2026, 1, 1, tzinfo=UTC), start.date(), uid, seed)
                end = start + timedelta(minutes=minutes)
                body = self._event(subject, start, end, goid, **dict(fields))
                body.update(type="occurrence", seriesMasterId=master, originalStart=offset_time(start))
                item = self.state.put(self.upn, "calendar", None, body, span=(start, end), series=master,
                                      original=start)  # fmt: skip
                out[start] = item.immutable_id
            return out

    def reschedule(self, event_id: str, start: datetime, minutes: int = 60, **changes: Any) -> None:
        """Move an event; an occurrence becomes an ``exception`` (its ``originalStart`` stays)."""
        with self.lock:
            item = self.state.mailbox(self.upn).collections["calendar"].items[event_id]
            end = start + timedelta(minutes=minutes)
            body = {**item.body, **changes, "start": {"dateTime": graph_time(start), "timeZone": "UTC"},
                    "end": {"dateTime": graph_time(end), "timeZone": "UTC"}}  # fmt: skip
            if body["type"] == "occurrence":
                body["type"] = "exception"
            self.state.put(self.upn, "calendar", event_id, body, span=(start, end), series=item.series,
                           original=item.original)  # fmt: skip

    def cancel_meeting(self, event_id: str) -> None:
        """The organizer cancelled: the attendee's copy stays with ``isCancelled`` true and "Canceled: " subject."""
        with self.lock:
            item = self.state.mailbox(self.upn).collections["calendar"].items[event_id]
            body = {**item.body, "isCancelled": True, "subject": "Canceled: " + item.body["subject"]}
            self.state.put(self.upn, "calendar", event_id, body, span=item.span, series=item.series,
                           original=item.original)  # fmt: skip

    def edit_event(self, event_id: str, **changes: Any) -> None:
        """Change properties as they are (e.g. ``start=None``: what a damaged item would look like)."""
        with self.lock:
            item = self.state.mailbox(self.upn).collections["calendar"].items[event_id]
            self.state.put(self.upn, "calendar", event_id, {**item.body, **changes}, span=item.span,
                           series=item.series, original=item.original)  # fmt: skip

    def delete_event(self, event_id: str) -> None:
        with self.lock:
            self.state.remove(self.upn, "calendar", event_id)

    # --- contacts ----------------------------------------------------------------------------------------

    def add_contact(self, given: str, surname: str, emails: Iterable[str], contact_id: str | None = None,
                    **fields: Any) -> str:  # fmt: skip
        with self.lock:
            body = {
                "@odata.type": "#microsoft.graph.contact",
                "createdDateTime": "2026-01-01T00:00:00Z",
                "categories": [],
                "parentFolderId": "AAMkAGI2TG93AAA=",
                "birthday": None,
                "fileAs": f"{surname}, {given}",
                "displayName": f"{given} {surname}".strip(),
                "givenName": given,
                "initials": None,
                "middleName": None,
                "nickName": None,
                "surname": surname,
                "title": None,
                "generation": None,
                "imAddresses": [],
                "jobTitle": fields.pop("job_title", None),
                "companyName": fields.pop("company", None),
                "department": None,
                "businessPhones": list(fields.pop("business_phones", ())),
                "homePhones": [],
                "mobilePhone": fields.pop("mobile", None),
                "emailAddresses": [{"name": e, "address": e} for e in emails],
                "businessAddress": {},
                "homeAddress": {},
                "otherAddress": {},
            }
            body.update(fields)
            return self.state.put(self.upn, "contacts", contact_id, body).immutable_id

    def delete_contact(self, contact_id: str) -> None:
        with self.lock:
            self.state.remove(self.upn, "contacts", contact_id)

"""SOAP response XML for the loopback EWS server, built after Microsoft's EWS reference pages.

Each builder names the page whose example it follows (learn.microsoft.com/exchange/client-developer/
web-service-reference/…, mirrored in github.com/MicrosoftDocs/office-developer-exchange-docs):

- envelope + ``ServerVersionInfo`` header: "ServerVersionInfo", "GetFolder operation" (response example);
  Exchange 2019 CU reports ``Version="V2017_07_11"``.
- response messages: "ResponseMessages", "ResponseCode", e.g. "SyncFolderItems operation" (success and the
  ``ErrorInvalidSyncStateData`` error response), "ConvertId operation" (error response).
- throttling fault: "EWS throttling in Exchange" (HTTP 500, ``ErrorServerBusy``, ``BackOffMilliseconds`` in
  ``MessageXml``), the same XML as exchangelib's ``tests/test_services.py::test_error_server_busy``.
- items: "Message", "MimeContent" (base64 of the MIME stream), "CalendarItem" and [MS-OXWSMTGS] 2.2.4.6
  ``CalendarItemType`` (element order: ItemType elements, then UID, RecurrenceId, Start, End, OriginalStart,
  IsAllDayEvent, Location, IsMeeting, IsCancelled, IsRecurring, CalendarItemType, Organizer, RequiredAttendees,
  OptionalAttendees, AppointmentSequenceNumber, StartTimeZone, EndTimeZone), "GetItem operation (contact)"
  (Contact with CompleteName, CompanyName, EmailAddresses/Entry Key="EmailAddress1",
  PhoneNumbers/Entry Key="BusinessPhone", JobTitle).
- FindItem with CalendarView: "Get appointments and meetings by using EWS in Exchange" (``RootFolder`` with
  ``TotalItemsInView`` and ``IncludesLastItemInRange``, ``t:Items`` of ``t:CalendarItem``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import datetime
from xml.sax.saxutils import escape, quoteattr

from tests.support.ews_store import Event, Item, Person, View

S = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"

Wanted = frozenset[str] | None  # requested FieldURIs; None: every property (Default / AllProperties shape)


def envelope(body: str, *, version_header: bool = True) -> bytes:
    header = (
        f'<s:Header><h:ServerVersionInfo MajorVersion="15" MinorVersion="2" MajorBuildNumber="1118" '
        f'MinorBuildNumber="7" Version="V2017_07_11" xmlns:h="{T}"/></s:Header>'
        if version_header
        else ""
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{S}">{header}<s:Body>{body}</s:Body></s:Envelope>'
    ).encode()


def response(operation: str, messages: Iterable[str]) -> str:
    return (
        f'<m:{operation}Response xmlns:m="{M}" xmlns:t="{T}"><m:ResponseMessages>{"".join(messages)}'
        f"</m:ResponseMessages></m:{operation}Response>"
    )


def success(operation: str, inner: str = "") -> str:
    return (
        f'<m:{operation}ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>{inner}'
        f"</m:{operation}ResponseMessage>"
    )


def error(operation: str, code: str, text: str, inner: str = "") -> str:
    return (
        f'<m:{operation}ResponseMessage ResponseClass="Error"><m:MessageText>{escape(text)}</m:MessageText>'
        f"<m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>{inner}"
        f"</m:{operation}ResponseMessage>"
    )


def soap_fault(code: str, text: str) -> bytes:
    """A SOAP-level fault (the shape of the throttling fault, without MessageXml)."""
    return envelope(
        f'<s:Fault><faultcode xmlns:a="{T}">a:{code}</faultcode><faultstring>{escape(text)}</faultstring><detail>'
        f'<e:ResponseCode xmlns:e="{E}">{code}</e:ResponseCode><e:Message xmlns:e="{E}">{escape(text)}</e:Message>'
        "</detail></s:Fault>",
        version_header=False,
    )


def server_busy_fault(back_off_ms: int) -> bytes:
    text = "The server cannot service this request right now. Try again later."
    return envelope(
        f'<s:Fault><faultcode xmlns:a="{T}">a:ErrorServerBusy</faultcode>'
        f'<faultstring xml:lang="en-US">{text}</faultstring><detail>'
        f'<e:ResponseCode xmlns:e="{E}">ErrorServerBusy</e:ResponseCode><e:Message xmlns:e="{E}">{text}</e:Message>'
        f'<t:MessageXml xmlns:t="{T}"><t:Value Name="BackOffMilliseconds">{back_off_ms}</t:Value></t:MessageXml>'
        "</detail></s:Fault>",
        version_header=False,
    )


def _dt(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _el(name: str, text: str) -> str:
    return f"<t:{name}>{escape(text)}</t:{name}>"


def _mailbox(email: str) -> str:
    name = email.partition("@")[0].replace(".", " ").title()
    return f"<t:Mailbox>{_el('Name', name)}{_el('EmailAddress', email)}<t:RoutingType>SMTP</t:RoutingType></t:Mailbox>"


def _attendees(tag: str, emails: tuple[str, ...]) -> str:
    inner = "".join(f"<t:Attendee>{_mailbox(e)}<t:ResponseType>Unknown</t:ResponseType></t:Attendee>" for e in emails)
    return f"<t:{tag}>{inner}</t:{tag}>"


def _pick(wanted: Wanted, fields: list[tuple[str, str | None]]) -> str:
    """The XML of the requested fields, in schema order; ``None`` values are left out."""
    return "".join(xml for uri, xml in fields if xml is not None and (wanted is None or uri in wanted))


def message_xml(item: Item, wanted: Wanted) -> str:
    mime = base64.b64encode(item.mime).decode()
    fields: list[tuple[str, str | None]] = [
        ("item:MimeContent", f'<t:MimeContent CharacterSet="UTF-8">{mime}</t:MimeContent>'),
        ("message:IsRead", _el("IsRead", str(item.is_read).lower())),
    ]
    head = f'<t:ItemId Id="{item.id}" ChangeKey="CQAAAB{item.changekey}"/>'
    return f"<t:Message>{head}{_pick(wanted, fields)}</t:Message>"


def calendar_xml(view: View, wanted: Wanted) -> str:
    ev: Event = view.event
    body = f'<t:Body BodyType="Text">{escape(ev.body)}</t:Body>'
    categories = "".join(_el("String", c) for c in ev.categories)
    start, end = ev.start, ev.end
    original = view.original_start
    fields: list[tuple[str, str | None]] = [
        ("item:Subject", _el("Subject", ev.subject)),
        ("item:Body", body),
        ("item:Categories", f"<t:Categories>{categories}</t:Categories>" if ev.categories else None),
        ("calendar:UID", _el("UID", ev.uid)),
        ("calendar:RecurrenceId", _el("RecurrenceId", _dt(original)) if original else None),
        ("calendar:Start", _el("Start", _dt(start))),
        ("calendar:End", _el("End", _dt(end))),
        ("calendar:OriginalStart", _el("OriginalStart", _dt(original)) if original else None),
        ("calendar:IsAllDayEvent", _el("IsAllDayEvent", str(ev.all_day).lower())),
        ("calendar:Location", _el("Location", ev.location) if ev.location else None),
        ("calendar:IsMeeting", _el("IsMeeting", str(bool(ev.required or ev.optional)).lower())),
        ("calendar:IsCancelled", _el("IsCancelled", str(ev.cancelled).lower())),
        ("calendar:IsRecurring", _el("IsRecurring", str(view.type != "Single").lower())),
        ("calendar:CalendarItemType", _el("CalendarItemType", view.type)),
        ("calendar:Organizer", f"<t:Organizer>{_mailbox(ev.organizer)}</t:Organizer>"),
        ("calendar:RequiredAttendees", _attendees("RequiredAttendees", ev.required) if ev.required else None),
        ("calendar:OptionalAttendees", _attendees("OptionalAttendees", ev.optional) if ev.optional else None),
        ("calendar:AppointmentSequenceNumber", _el("AppointmentSequenceNumber", str(ev.sequence))),
        ("calendar:StartTimeZone", f"<t:StartTimeZone Id={quoteattr(ev.timezone)}/>"),
        ("calendar:EndTimeZone", f"<t:EndTimeZone Id={quoteattr(ev.timezone)}/>"),
    ]
    head = f'<t:ItemId Id="{view.id}" ChangeKey="{view.changekey}"/>'
    return f"<t:CalendarItem>{head}{_pick(wanted, fields)}</t:CalendarItem>"


def contact_xml(item: Item, wanted: Wanted) -> str:
    p: Person = item.person or Person()
    display = p.display or " ".join(x for x in (p.given, p.middle, p.surname) if x)
    names = _el("FirstName", p.given) + _el("LastName", p.surname) + _el("FullName", display)
    complete = f"<t:CompleteName>{names}</t:CompleteName>"
    emails = "".join(f'<t:Entry Key="EmailAddress{n}">{escape(e)}</t:Entry>' for n, e in enumerate(p.emails[:3], 1))
    phones = "".join(f'<t:Entry Key="{k}">{escape(v)}</t:Entry>' for k, v in p.phones)
    fields: list[tuple[str, str | None]] = [
        ("contacts:DisplayName", _el("DisplayName", display)),
        ("contacts:GivenName", _el("GivenName", p.given) if p.given else None),
        ("contacts:MiddleName", _el("MiddleName", p.middle) if p.middle else None),
        ("contacts:CompleteName", complete),
        ("contacts:CompanyName", _el("CompanyName", p.company) if p.company else None),
        ("contacts:EmailAddress", f"<t:EmailAddresses>{emails}</t:EmailAddresses>" if emails else None),
        ("contacts:PhoneNumber", f"<t:PhoneNumbers>{phones}</t:PhoneNumbers>" if phones else None),
        ("contacts:JobTitle", _el("JobTitle", p.job_title) if p.job_title else None),
        ("contacts:Surname", _el("Surname", p.surname) if p.surname else None),
    ]
    head = f'<t:ItemId Id="{item.id}" ChangeKey="EQAAAB{item.changekey}"/>'
    return f"<t:Contact>{head}{_pick(wanted, fields)}</t:Contact>"


def item_xml(found: Item | View, wanted: Wanted) -> str:
    if isinstance(found, View):
        return calendar_xml(found, wanted)
    if found.kind == "contact":
        return contact_xml(found, wanted)
    if found.kind == "calendar":
        raise ValueError("a stored calendar item is rendered through its View")
    return message_xml(found, wanted)


_FOLDER_TAGS = {
    "calendar": ("CalendarFolder", "IPF.Appointment", "Calendar"),
    "contacts": ("ContactsFolder", "IPF.Contact", "Contacts"),
    "inbox": ("Folder", "IPF.Note", "Inbox"),
    "sentitems": ("Folder", "IPF.Note", "Sent Items"),
    "root": ("Folder", "", "Root"),
    "msgfolderroot": ("Folder", "IPF.Note", "Top of Information Store"),
}


def folder_xml(folder_id: str, name: str, total: int) -> str:
    tag, folder_class, display = _FOLDER_TAGS[name]
    cls = _el("FolderClass", folder_class) if folder_class else ""
    return (
        f'<t:{tag}><t:FolderId Id="{folder_id}" ChangeKey="AQAAABYAAAA"/>{cls}{_el("DisplayName", display)}'
        f"<t:TotalCount>{total}</t:TotalCount><t:ChildFolderCount>0</t:ChildFolderCount>"
        f"<t:DistinguishedFolderId>{name}</t:DistinguishedFolderId></t:{tag}>"
    )

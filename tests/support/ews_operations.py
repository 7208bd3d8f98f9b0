"""The EWS operations of the loopback server (``ews_server``): request element in, response messages out.

Each operation reads the request the way the EWS reference describes it (``SyncFolderId`` / ``SyncState`` /
``MaxChangesReturned``; ``ItemShape`` with ``BaseShape`` IdOnly + ``AdditionalProperties``; ``ItemIds``;
``CalendarView`` with ``StartDate`` / ``EndDate`` / ``MaxEntriesReturned``; ``IndexedPageItemView``) and answers
with the builders of ``ews_xml``. Errors that concern one request become ``Fault`` → one error response message.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

from tests.support import ews_xml as x
from tests.support.ews_store import FOLDERS, EwsStore, InvalidSyncState, Item, View

_M, _T = f"{{{x.M}}}", f"{{{x.T}}}"
OPERATIONS = frozenset({"ConvertId", "GetFolder", "SyncFolderItems", "GetItem", "FindItem"})


class Fault(Exception):
    """An operation-level error: answered as one error response message."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


class Operations:
    """One method per EWS operation, named as the operation; called with the server's lock held."""

    def __init__(self, store: EwsStore, mailboxes: set[str]) -> None:
        self.store, self.mailboxes = store, mailboxes

    def mailbox(self, mailbox: str | None) -> str:
        if mailbox is None or mailbox not in self.mailboxes:
            raise Fault("ErrorNonExistentMailbox", f"No mailbox with such guid or address: {mailbox}")
        return mailbox

    def _folder(self, element: ET.Element, mailbox: str | None) -> tuple[str, str]:
        distinguished = element.find(f".//{_T}DistinguishedFolderId")
        if distinguished is not None:
            return self.mailbox(mailbox), distinguished.get("Id", "")
        folder = element.find(f".//{_T}FolderId")
        parsed = self.store.parse_folder_id(folder.get("Id", "")) if folder is not None else None
        if parsed is None:
            raise Fault("ErrorInvalidIdMalformed", "Id is malformed.")
        return self.mailbox(parsed[0]), parsed[1]

    @staticmethod
    def _wanted(element: ET.Element) -> x.Wanted:
        shape = element.find(f"{_M}ItemShape")
        if shape is None or shape.findtext(f"{_T}BaseShape") != "IdOnly":
            return None
        paths = shape.findall(f"{_T}AdditionalProperties/*")
        return frozenset(p.get("FieldURI", "") for p in paths)

    def ConvertId(self, element: ET.Element, mailbox: str | None) -> list[str]:
        return [x.error("ConvertId", "ErrorInvalidIdMalformed", "Id is malformed.")]

    def GetFolder(self, element: ET.Element, mailbox: str | None) -> list[str]:
        messages = []
        for folder_el in child(element, f"{_M}FolderIds"):
            try:
                box, name = self._folder(_wrap(folder_el), mailbox)
                if name not in FOLDERS:
                    raise Fault("ErrorFolderNotFound", "The specified folder could not be found in the store.")
            except Fault as fault:
                messages.append(x.error("GetFolder", fault.code, fault.text, "<m:Folders/>"))
                continue
            folder = x.folder_xml(self.store.folder_id(box, name), name, len(self.store.folder_items(box, name)))
            messages.append(x.success("GetFolder", f"<m:Folders>{folder}</m:Folders>"))
        return messages

    def SyncFolderItems(self, element: ET.Element, mailbox: str | None) -> list[str]:
        box, name = self._folder(child(element, f"{_M}SyncFolderId"), mailbox)
        wanted = self._wanted(element)
        try:
            changes, state, last = self.store.sync(
                box, name, element.findtext(f"{_M}SyncState"), int(element.findtext(f"{_M}MaxChangesReturned") or 100)
            )
        except InvalidSyncState:
            inner = "<m:SyncState/><m:IncludesLastItemInRange>true</m:IncludesLastItemInRange>"
            return [
                x.error(
                    "SyncFolderItems",
                    "ErrorInvalidSyncStateData",
                    "Synchronization state data is corrupt or otherwise invalid.",
                    inner,
                )
            ]
        parts = []
        for change in changes:
            ident = f'<t:ItemId Id="{change.item_id}" ChangeKey="{change.changekey}"/>'
            if change.type == "Delete":
                parts.append(f"<t:Delete>{ident}</t:Delete>")
            elif change.type == "ReadFlagChange":
                parts.append(
                    f"<t:ReadFlagChange>{ident}<t:IsRead>{str(change.is_read).lower()}</t:IsRead></t:ReadFlagChange>"
                )
            else:
                parts.append(f"<t:{change.type}>{_render(self.store.items[change.item_id], wanted)}</t:{change.type}>")
        inner = (
            f"<m:SyncState>{state}</m:SyncState><m:IncludesLastItemInRange>{str(last).lower()}"
            f"</m:IncludesLastItemInRange><m:Changes>{''.join(parts)}</m:Changes>"
        )
        return [x.success("SyncFolderItems", inner)]

    def GetItem(self, element: ET.Element, mailbox: str | None) -> list[str]:
        wanted = self._wanted(element)
        messages = []
        for ident in child(element, f"{_M}ItemIds"):
            found = self.store.lookup(ident.get("Id", ""))
            owner = found.mailbox if isinstance(found, Item) else None
            if found is None or (owner is not None and mailbox is not None and owner != mailbox):
                messages.append(
                    x.error(
                        "GetItem", "ErrorItemNotFound", "The specified object was not found in the store.", "<m:Items/>"
                    )
                )
            else:
                messages.append(x.success("GetItem", f"<m:Items>{_render(found, wanted)}</m:Items>"))
        return messages

    def FindItem(self, element: ET.Element, mailbox: str | None) -> list[str]:
        box, name = self._folder(child(element, f"{_M}ParentFolderIds"), mailbox)
        wanted = self._wanted(element)
        view = element.find(f"{_M}CalendarView")
        if view is not None:
            found: list[Any] = self.store.calendar_view(
                box, name, _parse_dt(view.get("StartDate", "")), _parse_dt(view.get("EndDate", ""))
            )
            limit = int(view.get("MaxEntriesReturned") or len(found) or 1)
            page, attrs = (
                found[:limit],
                f'TotalItemsInView="{len(found)}" IncludesLastItemInRange="{str(len(found) <= limit).lower()}"',
            )
        else:
            paged = element.find(f"{_M}IndexedPageItemView")
            offset = int(paged.get("Offset", "0")) if paged is not None else 0
            limit = int(paged.get("MaxEntriesReturned", "100")) if paged is not None else 100
            found = self.store.folder_items(box, name)
            page = found[offset : offset + limit]
            last = offset + len(page) >= len(found)
            attrs = (
                f'IndexedPagingOffset="{offset + len(page)}" TotalItemsInView="{len(found)}" '
                f'IncludesLastItemInRange="{str(last).lower()}"'
            )
        items = "".join(_render(v, wanted) for v in page)
        return [x.success("FindItem", f"<m:RootFolder {attrs}><t:Items>{items}</t:Items></m:RootFolder>")]


def child(element: ET.Element, tag: str) -> ET.Element:
    found = element.find(tag)
    if found is None:
        raise Fault("ErrorSchemaValidation", f"The request has no {tag.rpartition('}')[2]} element.")
    return found


def _wrap(element: ET.Element) -> ET.Element:
    holder = ET.Element("holder")
    holder.append(element)
    return holder


def _render(found: Item | View, wanted: x.Wanted) -> str:
    if isinstance(found, Item) and found.kind == "calendar" and found.event is not None:
        kind = "RecurringMaster" if found.event.every is not None else "Single"
        found = View(found.id, f"DwAAAB{found.changekey}", kind, found.event)
    return x.item_xml(found, wanted)


def _parse_dt(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))

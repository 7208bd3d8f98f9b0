"""Text taken from a calendar, made storable the same way on every database (SPEC §6, audit 17a F1).

PostgreSQL refuses NUL in text and its key columns have a length; SQLite takes both. A calendar file carries
many events in one item, so one hostile value would fail every event of the file on PostgreSQL only. Every
text value read from a calendar is cleaned here (``charsets.clean_text``: no NUL, no lone surrogates), and a
UID too long for the item key is replaced by a stable digest form: the same long UID in two calendars gives
the same UID here, so the copies still make one item (``pipeline.items.event_key``).

Pure: no I/O.
"""

from __future__ import annotations

import hashlib

from sync_service.parsing.charsets import clean_text

__all__ = ["MAX_ADDRESS", "MAX_NAME", "MAX_UID", "clean", "stable_uid"]

# ``synced_items.ical_uid`` is String(1000); the key ``evt:{uid}|{recurrence id}`` (at most 20 characters
# after the UID) must fit ``synced_items.dedupe_key``, String(1100). A UID up to this length is kept as it is.
MAX_UID = 1000
_PREFIX = 900  # characters of a longer UID kept in front of its digest (readable in exports)
# As for mail addresses (``parsing.addresses``): a longer address is unusable (RFC 5321), and a contact's name
# (``contacts.name``, String(300)) holds no more.
MAX_ADDRESS = 254
MAX_NAME = 300


def clean(text: str) -> str:
    """``text`` without the characters no database column can hold (NUL, lone surrogates)."""
    return clean_text(text)


def stable_uid(uid: str) -> str:
    """``uid`` cleaned; one longer than ``MAX_UID`` becomes its first characters and the SHA-256 of the whole
    cleaned UID (``…#sha256:hex``): the same for every copy of that UID, distinct for different UIDs."""
    uid = clean(uid).strip()
    if len(uid) <= MAX_UID:
        return uid
    digest = hashlib.sha256(uid.encode("utf-8")).hexdigest()
    return f"{uid[:_PREFIX]}#sha256:{digest}"

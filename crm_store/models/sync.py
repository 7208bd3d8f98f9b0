"""Sync state: mailboxes, per-folder cursors, raw items per mailbox, canonical items, quarantine.

- ``RawItem`` is one object in one mailbox folder (a message file, an .ics file, an IMAP UID, an EWS id),
  with the content hash of its bytes in the blob store. The sync stage writes these (plus the cursor) in
  one transaction; the processing stage turns pending ones into canonical items.
- ``SyncedItem`` is the canonical item: one per Message-ID, or per iCalendar UID + recurrence id. The same
  email in two mailboxes is one ``SyncedItem`` with two ``ItemSource`` links.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_store.models.base import Base, utcnow
from crm_store.models.directory import User

# Mailbox states (shown by `status` and the dashboard).
IDLE, SYNCING, PAUSED, FAILED, DEGRADED = "idle", "syncing", "paused", "failed", "degraded"
# Raw item states.
PENDING, DONE, QUARANTINED, DELETED = "pending", "done", "quarantined", "deleted"


class Mailbox(Base):
    __tablename__ = "mailboxes"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    source_url: Mapped[str] = mapped_column(String(2000))  # never holds a secret
    secret: Mapped[bytes | None] = mapped_column(LargeBinary)  # Fernet token (CRM_SECRET_KEY)
    state: Mapped[str] = mapped_column(String(20), default=IDLE)
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    items_synced: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    owner: Mapped[User] = relationship()
    folders: Mapped[list[FolderState]] = relationship(
        back_populates="mailbox", cascade="all, delete-orphan", order_by="FolderState.id"
    )


class FolderState(Base):
    """The cursor of one folder; saved in the same transaction as the items it covers."""

    __tablename__ = "folder_states"
    __table_args__ = (UniqueConstraint("mailbox_id", "folder"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    folder: Mapped[str] = mapped_column(String(500))
    cursor: Mapped[str | None] = mapped_column(Text)
    stage: Mapped[str] = mapped_column(String(20), default="initial")  # initial | incremental | resync
    resync_started_at: Mapped[datetime | None]  # a full resync round in progress since then
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    mailbox: Mapped[Mailbox] = relationship(back_populates="folders")


class PackedBlob(Base):
    """Where a blob stored in a pack file is (``crm_store.blobs``): the sync stage writes a fetched page's
    messages as one file instead of one file each, and records them here in the page's transaction."""

    __tablename__ = "packed_blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    pack: Mapped[str] = mapped_column(String(64))  # file name under CRM_DATA_DIR/blobs/packs/
    offset: Mapped[int] = mapped_column(BigInteger)
    length: Mapped[int] = mapped_column(BigInteger)


class RawItem(Base):
    __tablename__ = "raw_items"
    __table_args__ = (
        UniqueConstraint("mailbox_id", "folder", "external_id"),
        Index("ix_raw_items_state", "state", "id"),
        # The few items that hold recurring series, by how far they were expanded (``pipeline.series``).
        Index(
            "ix_raw_items_expanded_to",
            "expanded_to",
            sqlite_where=text("expanded_to IS NOT NULL"),
            postgresql_where=text("expanded_to IS NOT NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    folder: Mapped[str] = mapped_column(String(500))
    external_id: Mapped[str] = mapped_column(String(1000))
    version: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(20))  # message | calendar | contacts
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(String(20), default=PENDING)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime | None]  # last listed by the source (kept current during a full resync round)
    processed_at: Mapped[datetime | None]
    # Holds recurring series (an .ics object, an invitation): the end of the sync window they were last
    # expanded in; the processing expands them again once the window has moved on (``pipeline.series``).
    expanded_to: Mapped[datetime | None]
    mailbox: Mapped[Mailbox] = relationship()


class SyncedItem(Base):
    __tablename__ = "synced_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # email | event
    dedupe_key: Mapped[str] = mapped_column(String(1100), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(1000), index=True)
    # Outlook's conversation (Thread-Index root) of an email: with message_id, what replies find (rule a).
    conversation_id: Mapped[str | None] = mapped_column(String(200), index=True)
    ical_uid: Mapped[str | None] = mapped_column(String(1000), index=True)
    recurrence_id: Mapped[str | None] = mapped_column(String(40))
    sequence: Mapped[int] = mapped_column(default=0)
    subject: Mapped[str] = mapped_column(String(1000), default="")
    sent_at: Mapped[datetime | None]
    sha256: Mapped[str | None] = mapped_column(String(64))  # raw bytes of an email (the .eml)
    facts: Mapped[dict[str, Any]]  # matching facts kept for re-matching (addresses, ids, subject)
    skip_reason: Mapped[str | None] = mapped_column(String(50), index=True)
    deleted_at_source: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    sources: Mapped[list[ItemSource]] = relationship(back_populates="item", cascade="all, delete-orphan")


class ItemSource(Base):
    """Which raw mailbox object carries which canonical item (mailboxes that saw it)."""

    __tablename__ = "item_sources"
    __table_args__ = (UniqueConstraint("item_id", "raw_item_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("synced_items.id", ondelete="CASCADE"))
    raw_item_id: Mapped[int] = mapped_column(ForeignKey("raw_items.id", ondelete="CASCADE"), index=True)
    item: Mapped[SyncedItem] = relationship(back_populates="sources")
    raw_item: Mapped[RawItem] = relationship()


class AwaitedRef(Base):
    """A logged email (its opportunity chosen by no person) replies to a message not stored yet: once that message
    is stored, the reply is matched again, so it can follow the message by rule a (``pipeline.awaited``)."""

    __tablename__ = "awaited_refs"
    ref: Mapped[str] = mapped_column(String(1000), primary_key=True)  # a Message-ID (no angle brackets)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("synced_items.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class QuarantineEntry(Base):
    __tablename__ = "quarantine"
    # SQLite: an id is never handed out again once its entry left the quarantine (migration 0018); a retry by
    # an id from an earlier listing cannot hit another item. PostgreSQL sequences never reuse ids.
    __table_args__ = ({"sqlite_autoincrement": True},)
    id: Mapped[int] = mapped_column(primary_key=True)
    raw_item_id: Mapped[int | None] = mapped_column(ForeignKey("raw_items.id", ondelete="CASCADE"), unique=True)
    mailbox_id: Mapped[int | None] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    folder: Mapped[str] = mapped_column(String(500), default="")
    external_id: Mapped[str] = mapped_column(String(1000))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    retries: Mapped[int] = mapped_column(default=0)
    mailbox: Mapped[Mailbox | None] = relationship()

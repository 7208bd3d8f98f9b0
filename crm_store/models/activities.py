"""Activities (emails, meetings, calls, tasks), what they link to, documents and the review queue.

Links a person made are flagged ``manual`` (``ActivityAccount`` / ``ActivityContact``) or
``Activity.opportunity_manual``; links a person removed are remembered as ``ActivityLinkExclusion`` rows.
Re-matching keeps the first and never adds the second back (SPEC §3.7).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_store.models.base import Base, utcnow
from crm_store.models.directory import Account, Contact, Lead, User
from crm_store.models.sales import Opportunity

if TYPE_CHECKING:
    from crm_store.models.sync import SyncedItem


class Activity(Base):
    __tablename__ = "activities"
    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(20))  # email | meeting | call | task
    subject: Mapped[str] = mapped_column(String(1000), default="")
    status: Mapped[str] = mapped_column(String(20), default="planned")  # planned | completed | cancelled
    result: Mapped[str | None] = mapped_column(String(200))
    direction: Mapped[str | None] = mapped_column(String(20))  # inbound | outbound
    start_at: Mapped[datetime | None] = mapped_column(index=True)
    end_at: Mapped[datetime | None] = mapped_column()
    # A calendar event with dates, not times: start_at / end_at are the UTC midnights that bound its days.
    all_day: Mapped[bool] = mapped_column(default=False, server_default=false())
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)  # primary account
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True)
    opportunity_id: Mapped[int | None] = mapped_column(ForeignKey("opportunities.id"), index=True)
    opportunity_manual: Mapped[bool] = mapped_column(default=False)  # chosen by a person: sync keeps it
    lead_manual: Mapped[bool] = mapped_column(default=False)  # the lead was set by a person: sync keeps it
    item_id: Mapped[int | None] = mapped_column(ForeignKey("synced_items.id"), unique=True)
    process_step: Mapped[str | None] = mapped_column(String(200))  # step key this activity serves
    body: Mapped[str] = mapped_column(Text, default="")  # plain text
    origin: Mapped[str] = mapped_column(String(20), default="sync")  # sync | user | process
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    owner: Mapped[User | None] = relationship()
    account: Mapped[Account | None] = relationship()
    lead: Mapped[Lead | None] = relationship()
    opportunity: Mapped[Opportunity | None] = relationship()
    item: Mapped[SyncedItem | None] = relationship("SyncedItem")
    account_links: Mapped[list[ActivityAccount]] = relationship(
        cascade="all, delete-orphan", order_by="ActivityAccount.id"
    )
    contact_links: Mapped[list[ActivityContact]] = relationship(
        cascade="all, delete-orphan", order_by="ActivityContact.id"
    )
    documents: Mapped[list[Document]] = relationship(back_populates="activity", order_by="Document.id")

    # Completing due meetings and calls (``runner.complete_due``) looks for planned ones whose end has passed:
    # the few planned activities, not the end time of every email.
    __table_args__ = (
        Index(
            "ix_activities_planned_end_at",
            "end_at",
            sqlite_where=text("status = 'planned'"),
            postgresql_where=text("status = 'planned'"),
        ),
    )


class ActivityAccount(Base):
    __tablename__ = "activity_accounts"
    __table_args__ = (UniqueConstraint("activity_id", "account_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    manual: Mapped[bool] = mapped_column(default=False)  # set by a person: never overridden by sync
    account: Mapped[Account] = relationship()


class ActivityContact(Base):
    __tablename__ = "activity_contacts"
    __table_args__ = (UniqueConstraint("activity_id", "contact_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    manual: Mapped[bool] = mapped_column(default=False)
    contact: Mapped[Contact] = relationship()


class Document(Base):
    """A stored file linked to an activity / account / opportunity. Bytes live under their sha256."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("activity_id", "sha256", "filename"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(200), default="application/octet-stream")
    size: Mapped[int] = mapped_column(default=0)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    opportunity_id: Mapped[int | None] = mapped_column(ForeignKey("opportunities.id"), index=True)
    activity_id: Mapped[int | None] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20), default="attachment")  # email | attachment | file
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activity: Mapped[Activity | None] = relationship(back_populates="documents")
    account: Mapped[Account | None] = relationship()
    opportunity: Mapped[Opportunity | None] = relationship()


class ReviewItem(Base):
    """An activity whose opportunity could not be chosen automatically (SPEC §3.4)."""

    __tablename__ = "review_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"), unique=True)
    reason: Mapped[str] = mapped_column(String(300))
    candidates: Mapped[list[Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    activity: Mapped[Activity] = relationship()


# What an ``ActivityLinkExclusion`` names.
EXCLUDE_CONTACT, EXCLUDE_ACCOUNT, EXCLUDE_OPPORTUNITY, EXCLUDE_LEAD = "contact", "account", "opportunity", "lead"


class ActivityLinkExclusion(Base):
    """A link a person removed from an activity; automatic matching never adds it back (SPEC §3.7).

    ``target_id`` is the id of a contact, account or opportunity (``kind`` says which); it has no foreign key
    because it points into three tables, and a stale one (its record deleted) simply excludes nothing.
    """

    __tablename__ = "activity_link_exclusions"
    __table_args__ = (UniqueConstraint("activity_id", "kind", "target_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # contact | account | opportunity | lead
    target_id: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

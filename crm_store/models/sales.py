"""Opportunities, their participants and history, and the process definitions that drive them."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Numeric, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_store.models.base import Base, utcnow
from crm_store.models.directory import Account, Contact, User

OPEN = "open"


class ProcessDefinition(Base):
    """A sales process as data (loaded from the shipped YAML by `init`; editable)."""

    __tablename__ = "process_definitions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    definition: Mapped[dict[str, Any]]
    # sha256 of the shipped definition this row was seeded from: `init` updates the row to a newer shipped
    # version only while its definition still hashes to this (nobody edited it).
    shipped_sha256: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Opportunity(Base):
    __tablename__ = "opportunities"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    stage: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(50), default=OPEN, index=True)  # open | won | lost | …
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    close_date: Mapped[date | None]
    source: Mapped[str | None] = mapped_column(String(100))
    won_reason: Mapped[str | None] = mapped_column(String(200))
    lost_reason: Mapped[str | None] = mapped_column(String(200))
    competitor: Mapped[str | None] = mapped_column(String(200))
    process_id: Mapped[int | None] = mapped_column(ForeignKey("process_definitions.id"))
    current_step: Mapped[str | None] = mapped_column(String(200))  # step key within the process definition
    advanced_at: Mapped[datetime | None]  # the process's last progress: older activities cannot drive it
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"), index=True)
    # The stage the opportunities CSV last set (None: no import since revision 0016): a file showing this stage
    # again leaves the stage the process or a person moved it to since (sync_service.importers.last_import).
    imported_stage: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    account: Mapped[Account | None] = relationship()
    owner: Mapped[User | None] = relationship()
    participants: Mapped[list[OpportunityParticipant]] = relationship(
        back_populates="opportunity", cascade="all, delete-orphan", order_by="OpportunityParticipant.id"
    )
    history: Mapped[list[OpportunityHistory]] = relationship(
        back_populates="opportunity", cascade="all, delete-orphan", order_by="OpportunityHistory.id"
    )
    process: Mapped[ProcessDefinition | None] = relationship()

    @property
    def is_open(self) -> bool:
        return self.status == OPEN


class OpportunityParticipant(Base):
    """A contact role on an opportunity: role, influence, loyalty."""

    __tablename__ = "opportunity_participants"
    __table_args__ = (UniqueConstraint("opportunity_id", "contact_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunities.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    role: Mapped[str | None] = mapped_column(String(100))
    influence: Mapped[str | None] = mapped_column(String(50))
    loyalty: Mapped[str | None] = mapped_column(String(50))
    # Put there by the opportunities CSV (revision 0017): the file's Contacts cell manages these, and an import
    # takes off only these when the cell no longer lists them (not the lead's person a conversion added).
    imported: Mapped[bool] = mapped_column(default=False, server_default=false())
    opportunity: Mapped[Opportunity] = relationship(back_populates="participants")
    contact: Mapped[Contact] = relationship()


class OpportunityHistory(Base):
    """Every stage / step transition, with the activity that caused it."""

    __tablename__ = "opportunity_history"
    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunities.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(100))
    step: Mapped[str | None] = mapped_column(String(200))
    result: Mapped[str | None] = mapped_column(String(200))
    activity_id: Mapped[int | None] = mapped_column(ForeignKey("activities.id", ondelete="SET NULL"))
    automatic: Mapped[bool] = mapped_column(default=False)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    opportunity: Mapped[Opportunity] = relationship(back_populates="history")


class LeadHistory(Base):
    """Every stage / step transition of a lead's process, with the activity that caused it."""

    __tablename__ = "lead_history"
    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(100))
    step: Mapped[str | None] = mapped_column(String(200))
    result: Mapped[str | None] = mapped_column(String(200))
    activity_id: Mapped[int | None] = mapped_column(ForeignKey("activities.id", ondelete="SET NULL"))
    automatic: Mapped[bool] = mapped_column(default=False)
    at: Mapped[datetime] = mapped_column(default=utcnow)

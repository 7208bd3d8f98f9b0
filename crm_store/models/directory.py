"""Who the CRM knows: reps (users), accounts and their domains, contacts, leads, notes, lookups."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_store.models.base import Base, utcnow


class User(Base):
    """A sales rep (or admin) of our own company. Their mail domains are internal."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Lookup(Base):
    """Configurable value lists: lead statuses, stages, sources, reasons, task types, territories…"""

    __tablename__ = "lookups"
    __table_args__ = (UniqueConstraint("kind", "value"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(50), index=True)
    value: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(default=0)


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    name_key: Mapped[str] = mapped_column(String(300), unique=True)  # lower-cased name: unique, CSV joins
    type: Mapped[str] = mapped_column(String(20), default="prospect")  # customer | prospect
    territory: Mapped[str | None] = mapped_column(String(100))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    domains: Mapped[list[AccountDomain]] = relationship(
        back_populates="account", cascade="all, delete-orphan", order_by="AccountDomain.id"
    )
    owner: Mapped[User | None] = relationship()


class AccountDomain(Base):
    __tablename__ = "account_domains"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    domain: Mapped[str] = mapped_column(String(255), unique=True)
    account: Mapped[Account] = relationship(back_populates="domains")


class Contact(Base):
    __tablename__ = "contacts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    first_name: Mapped[str] = mapped_column(String(100), default="")
    middle_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    company: Mapped[str] = mapped_column(String(300), default="")
    job_title: Mapped[str] = mapped_column(String(200), default="")
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    source: Mapped[str] = mapped_column(String(20), default="import")  # import (CSV or vCard) | sync
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    emails: Mapped[list[ContactEmail]] = relationship(
        back_populates="contact", cascade="all, delete-orphan", order_by="ContactEmail.position"
    )
    phones: Mapped[list[ContactPhone]] = relationship(
        back_populates="contact", cascade="all, delete-orphan", order_by="ContactPhone.id"
    )
    account: Mapped[Account | None] = relationship()

    @property
    def primary_email(self) -> str | None:
        return self.emails[0].email if self.emails else None


class ContactEmail(Base):
    __tablename__ = "contact_emails"
    __table_args__ = (UniqueConstraint("contact_id", "email"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320), index=True)  # lower-case
    position: Mapped[int] = mapped_column(default=0)
    contact: Mapped[Contact] = relationship(back_populates="emails")


class ContactPhone(Base):
    __tablename__ = "contact_phones"
    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(30), default="other")
    raw: Mapped[str] = mapped_column(String(100))
    e164: Mapped[str | None] = mapped_column(String(20), index=True)
    contact: Mapped[Contact] = relationship(back_populates="phones")


class Lead(Base):
    __tablename__ = "leads"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    company: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(100), default="Initial Lead")
    source: Mapped[str | None] = mapped_column(String(100))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    origin: Mapped[str] = mapped_column(String(20), default="import")  # import | sync | user
    # The status the leads CSV last set (None: no import since revision 0016): a file showing this status again
    # leaves the status the process or a person set since (sync_service.importers.last_import).
    imported_status: Mapped[str | None] = mapped_column(String(100))
    # The lead's process (Lead management, SPEC §2): its stage, current step and last progress.
    process_id: Mapped[int | None] = mapped_column(ForeignKey("process_definitions.id"))
    process_stage: Mapped[str | None] = mapped_column(String(100))
    current_step: Mapped[str | None] = mapped_column(String(200))
    advanced_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    emails: Mapped[list[LeadEmail]] = relationship(
        back_populates="lead", cascade="all, delete-orphan", order_by="LeadEmail.position"
    )
    phones: Mapped[list[LeadPhone]] = relationship(back_populates="lead", cascade="all, delete-orphan")
    owner: Mapped[User | None] = relationship()


class LeadEmail(Base):
    __tablename__ = "lead_emails"
    __table_args__ = (UniqueConstraint("lead_id", "email"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320), index=True)
    position: Mapped[int] = mapped_column(default=0)
    lead: Mapped[Lead] = relationship(back_populates="emails")


class LeadPhone(Base):
    __tablename__ = "lead_phones"
    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    raw: Mapped[str] = mapped_column(String(100))
    e164: Mapped[str | None] = mapped_column(String(20), index=True)
    lead: Mapped[Lead] = relationship(back_populates="phones")


class NeverLog(Base):
    """Addresses and domains whose mail is never logged (SPEC §3.1)."""

    __tablename__ = "never_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[str] = mapped_column(String(320), unique=True)  # an address or a domain, lower-case


class NotebookNote(Base):
    __tablename__ = "notebook_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


Index("ix_contacts_name", Contact.name)

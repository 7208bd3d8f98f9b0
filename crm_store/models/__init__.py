"""The CRM store's SQLAlchemy models (SPEC §1), one module per concept."""

from __future__ import annotations

from crm_store.models.activities import (
    Activity,
    ActivityAccount,
    ActivityContact,
    ActivityLinkExclusion,
    Document,
    ReviewItem,
)
from crm_store.models.base import Base, utcnow
from crm_store.models.directory import (
    Account,
    AccountDomain,
    Contact,
    ContactEmail,
    ContactPhone,
    Lead,
    LeadEmail,
    LeadPhone,
    Lookup,
    NeverLog,
    NotebookNote,
    User,
)
from crm_store.models.sales import (
    Opportunity,
    OpportunityHistory,
    OpportunityParticipant,
    ProcessDefinition,
)
from crm_store.models.sync import (
    AwaitedRef,
    FolderState,
    ItemSource,
    Mailbox,
    PackedBlob,
    QuarantineEntry,
    RawItem,
    SyncedItem,
)

__all__ = [
    "Account",
    "AccountDomain",
    "Activity",
    "ActivityAccount",
    "ActivityContact",
    "ActivityLinkExclusion",
    "AwaitedRef",
    "Base",
    "Contact",
    "ContactEmail",
    "ContactPhone",
    "Document",
    "FolderState",
    "ItemSource",
    "Lead",
    "LeadEmail",
    "LeadPhone",
    "Lookup",
    "Mailbox",
    "NeverLog",
    "NotebookNote",
    "Opportunity",
    "OpportunityHistory",
    "OpportunityParticipant",
    "PackedBlob",
    "ProcessDefinition",
    "QuarantineEntry",
    "RawItem",
    "ReviewItem",
    "SyncedItem",
    "User",
    "utcnow",
]

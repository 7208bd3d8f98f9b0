"""Renaming an account (``crm-sync account rename``).

The accounts CSV keys accounts by Name (``Account.name_key``), so renaming an account in the file makes a
second account: the renamed row is a new account, and the old one keeps the domains, contacts and
opportunities. The rename is therefore its own command; afterwards the file's row with the new name updates the
same account. Nothing else refers to an account by its name once it is stored (matching goes by domain and
contact), except the files imported later — opportunities and contacts rows naming the account, and a lead's
Company when the lead becomes a sale — which then use the new name.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import Account
from sync_service.errors import ConfigError
from sync_service.importers.normalize import clean_text, name_key


def rename_account(session: Session, old: str, new: str) -> Account:
    """Give the account named ``old`` (case-insensitive) the name ``new``; the account. A change of case only
    is a rename too. Raises ``ConfigError`` (one line) for an unknown account, an empty name, a name taken."""
    account = session.scalars(select(Account).where(Account.name_key == name_key(old))).first()
    if account is None:
        raise ConfigError(f"no account named {clean_text(old)!r}")
    name = clean_text(new)
    if not name:
        raise ConfigError("the new name is empty")
    key = name_key(name)
    taken = session.scalars(select(Account).where(Account.name_key == key, Account.id != account.id)).first()
    if taken is not None:
        raise ConfigError(f"an account named {taken.name!r} already exists (id {taken.id})")
    account.name, account.name_key = name, key
    session.flush()
    return account

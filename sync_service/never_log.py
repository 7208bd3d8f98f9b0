"""The never-log list (SPEC §3.1): addresses and domains whose mail and meetings are never logged.

An entry is an address (``ceo@acme.example``: that address) or a domain (``acme.example``: every address at
it and at its subdomains). Adding an entry logs nothing new from it; what was logged before stays (remove it by
hand if it must go). Removing an entry lets re-matching log what it held back.
"""

from __future__ import annotations

import re

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from crm_store.models import NeverLog
from sync_service.errors import ConfigError
from sync_service.matching.domains import normalize_domain, normalize_email

_LABEL = r"[^\s@.<>()\[\],;:\"]+"
_DOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+$")


def entry(value: str) -> str:
    """The stored form of an entry (lower-case, IDNA decoded), or a ConfigError saying what is wrong."""
    raw = value.strip()
    local, at, domain = raw.rpartition("@")
    if at and (not local or not _DOMAIN.match(domain)):
        raise ConfigError(f"not an email address: {raw!r}")
    if not at and not _DOMAIN.match(raw):
        raise ConfigError(f"not an email address or a domain: {raw!r} (e.g. ceo@acme.example or acme.example)")
    return normalize_email(raw) if at else normalize_domain(raw)


def list_entries(session: Session) -> list[str]:
    return list(session.scalars(select(NeverLog.value).order_by(NeverLog.value)))


def add_entries(session: Session, values: list[str]) -> list[str]:
    """Add the entries not listed yet; returns those added (the same value twice is added once)."""
    wanted = list(dict.fromkeys(entry(v) for v in values))  # every value is checked before anything is written
    present = set(session.scalars(select(NeverLog.value).where(NeverLog.value.in_(wanted))))
    added = [v for v in wanted if v not in present]
    session.add_all(NeverLog(value=v) for v in added)
    return added


def remove_entries(session: Session, values: list[str]) -> list[str]:
    """Remove the entries; an entry that is not listed is an error naming it, and nothing is removed."""
    wanted = list(dict.fromkeys(entry(v) for v in values))
    present = set(session.scalars(select(NeverLog.value).where(NeverLog.value.in_(wanted))))
    missing = [v for v in wanted if v not in present]
    if missing:
        raise ConfigError(f"not on the never-log list: {', '.join(missing)}")
    session.execute(delete(NeverLog).where(NeverLog.value.in_(wanted)))
    return wanted

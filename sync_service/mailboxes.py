"""Mailbox administration: add, list, change the source, remove, pause, resume, resync (SPEC §5)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from crm_store.models import FolderState, Mailbox, RawItem, User
from crm_store.models.sync import IDLE, PAUSED
from crm_store.secrets import SecretBox
from sync_service.connectors.registry import needs_secret, open_connector, schemes
from sync_service.errors import ConfigError
from sync_service.orphan_meetings import Orphaned, cancel_orphaned_meetings
from sync_service.source_identity import source_key

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$")
# Query parameters that carry a credential in the URLs of published feeds and signed links (``?token=``,
# ``?key=``, ``?sig=``, ``?access_token=`` …): their values are never shown.
_SECRET_PARAM = re.compile(r"token|key|secret|pass|pwd|sig|signature|code|credential", re.IGNORECASE)


@dataclass(frozen=True)
class MailboxInfo:
    name: str
    owner: str
    source: str
    state: str
    last_success_at: datetime | None
    last_error: str | None
    items_synced: int
    last_error_at: datetime | None = None


def redact_url(url: str) -> str:
    """The URL as shown anywhere: no password, and ``***`` for the value of a query parameter named like a
    credential (a password in a URL is refused on add, but never shown anyway)."""
    parts = urlsplit(url)
    netloc, query = parts.netloc, parts.query
    if parts.password is not None:
        host = parts.hostname or ""
        netloc = f"{parts.username}@{host}" if parts.username else host
        if parts.port:
            netloc += f":{parts.port}"
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(_SECRET_PARAM.search(k) for k, _ in pairs):
        query = urlencode([(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*,")
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def refuse_password_in_url(source: str) -> None:
    if urlsplit(source).password is not None:
        raise ConfigError("do not put a password in the source URL; use --secret-env VAR or the prompt")


def check_source(source: str, secret: str | None) -> None:
    """What the source's connector says of its URL before the mailbox is added: unknown options, a local path
    that does not exist, a missing user or host. Nothing is connected to."""
    open_connector(source, secret).close()


def _get(session: Session, name: str) -> Mailbox:
    mailbox = session.scalar(select(Mailbox).where(Mailbox.name == name))
    if mailbox is None:
        raise ConfigError(f"no mailbox named {name!r}")
    return mailbox


def get_or_create_user(session: Session, email: str) -> User:
    email = email.strip().lower()
    if "@" not in email or email.startswith("@") or "." not in email.rpartition("@")[2]:
        raise ConfigError(f"not an email address: {email!r}")
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, name=email.partition("@")[0].replace(".", " ").title())
        session.add(user)
        session.flush()
    return user


def _check_scheme(source: str) -> None:
    scheme = urlsplit(source).scheme.lower()
    if scheme not in schemes():
        raise ConfigError(f"unsupported source URL scheme {scheme!r} (supported: {', '.join(schemes())})")


def shared_with(session: Session, source: str, other_than: str | None = None) -> str | None:
    """The mailbox (other than ``other_than``) that already syncs the source ``source`` names, if any
    (``source_identity``: the same path, host and user, whatever the spelling)."""
    key = source_key(source)
    rows = session.execute(select(Mailbox.name, Mailbox.source_url).order_by(Mailbox.name))
    return next((name for name, url in rows if name != other_than and source_key(url) == key), None)


def refuse_shared_source(session: Session, source: str, other_than: str | None = None) -> None:
    """A second mailbox on a source another one syncs fetches everything twice and lists both mailboxes on
    every item: refused, unless the caller was told it is meant (``--allow-shared-source``)."""
    other = shared_with(session, source, other_than)
    if other is not None:
        raise ConfigError(
            f"mailbox {other!r} already syncs {redact_url(source)} (pass --allow-shared-source if both are meant)"
        )


def add_mailbox(
    session: Session, name: str, owner: str, source: str, secret: str | None, secret_keys: tuple[str, ...]
) -> Mailbox:
    if not _NAME.match(name):
        raise ConfigError("a mailbox name uses letters, digits, '.', '_', '-', '@' (at most 200)")
    _check_scheme(source)
    refuse_password_in_url(source)
    if session.scalar(select(Mailbox.id).where(Mailbox.name == name)) is not None:
        raise ConfigError(f"a mailbox named {name!r} already exists")
    if needs_secret(source) and not secret:
        raise ConfigError(f"the source {redact_url(source)} needs a secret (--secret-env VAR or a terminal prompt)")
    user = get_or_create_user(session, owner)
    mailbox = Mailbox(name=name, owner_id=user.id, source_url=source, state=IDLE)
    if secret:
        mailbox.secret = SecretBox(secret_keys).encrypt(secret)
    session.add(mailbox)
    session.flush()
    return mailbox


def list_mailboxes(session: Session) -> list[MailboxInfo]:
    rows = session.execute(select(Mailbox, User.email).join(User, User.id == Mailbox.owner_id).order_by(Mailbox.name))
    return [
        MailboxInfo(
            m.name,
            email,
            redact_url(m.source_url),
            m.state,
            m.last_success_at,
            m.last_error,
            m.items_synced,
            m.last_error_at,
        )
        for m, email in rows
    ]


def remove_mailbox(session: Session, name: str, now: datetime | None = None) -> Orphaned:
    """Forget the mailbox and its sync state. Activities and documents already logged stay in the CRM; the
    meetings and calls ahead that only this mailbox carried are cancelled (``orphan_meetings``)."""
    mailbox = _get(session, name)
    orphaned = cancel_orphaned_meetings(session, mailbox.id, now or datetime.now(UTC))
    session.execute(delete(FolderState).where(FolderState.mailbox_id == mailbox.id))
    session.delete(mailbox)
    return orphaned


@dataclass(frozen=True)
class SourceChange:
    old: str  # as shown (``redact_url``)
    new: str
    state: str  # the mailbox's state now: ``paused`` stays paused
    secret: str  # "replaced" | "kept" | "dropped" | "none"
    orphaned: Orphaned  # meetings ahead only the old source carried: cancelled until the new one brings them


def change_source(
    session: Session,
    name: str,
    source: str,
    secret: str | None,
    secret_keys: tuple[str, ...],
    now: datetime | None = None,
) -> SourceChange:
    """Point a mailbox at another URL (a moved Maildir, a renamed folder, a new server).

    Checked as ``add`` checks it. ``secret``: a new one to store; ``None`` keeps the stored one when the new
    source needs one (none stored: refused), and drops it when the new source needs none. The mailbox forgets
    the old source's copies, as ``remove`` does, and keeps its name, owner, secret and state: the next sync
    reads the new source as a first sync, and what it holds is recognised by its content ids (Message-ID, UID),
    so nothing is doubled. The old copies must go, not wait to be seen again: one the new source does not hold
    would otherwise go on "carrying" its meeting, which would then never be cancelled when it is deleted, and
    would be completed when its time passes. Meetings ahead that only the old source carried are cancelled
    (``orphan_meetings``); the new source's copy brings back each one it still holds. Logged mail and past
    meetings stay. The failure state is cleared (a failed or degraded mailbox syncs again); a paused one stays
    paused until resumed."""
    mailbox = _get(session, name)
    _check_scheme(source)
    refuse_password_in_url(source)
    if secret:
        effective: str | None = secret
        outcome = "replaced"
    elif not needs_secret(source):
        effective, outcome = None, "dropped" if mailbox.secret is not None else "none"
    elif mailbox.secret is not None:
        effective, outcome = SecretBox(secret_keys).decrypt(mailbox.secret), "kept"
    else:
        raise ConfigError(f"the source {redact_url(source)} needs a secret (--secret-env VAR or a terminal prompt)")
    check_source(source, effective)
    old = redact_url(mailbox.source_url)
    mailbox.source_url = source
    if secret:
        mailbox.secret = SecretBox(secret_keys).encrypt(secret)
    elif outcome == "dropped":
        mailbox.secret = None
    orphaned = cancel_orphaned_meetings(session, mailbox.id, now or datetime.now(UTC))
    # The old copies go (their item sources and quarantine entries with them, by the foreign keys), as on remove.
    session.execute(delete(RawItem).where(RawItem.mailbox_id == mailbox.id))
    session.execute(delete(FolderState).where(FolderState.mailbox_id == mailbox.id))
    mailbox.consecutive_failures, mailbox.last_error, mailbox.last_error_at = 0, None, None
    if mailbox.state != PAUSED:  # failed, degraded: a person says the cause is gone, as ``resume``
        mailbox.state = IDLE
    return SourceChange(old, redact_url(source), mailbox.state, outcome, orphaned)


def pause_mailbox(session: Session, name: str) -> None:
    _get(session, name).state = PAUSED


def resume_mailbox(session: Session, name: str) -> None:
    """A person says the cause is gone: the mailbox syncs again, and the old error is no longer shown beside it
    (the next failure, if any, records a new one)."""
    mailbox = _get(session, name)
    mailbox.state, mailbox.consecutive_failures = IDLE, 0
    mailbox.last_error, mailbox.last_error_at = None, None


def resync_mailbox(session: Session, name: str) -> None:
    """Forget the cursors so the next sync reads everything again; dedupe keeps it free of duplicates."""
    mailbox = _get(session, name)
    session.execute(update(FolderState).where(FolderState.mailbox_id == mailbox.id).values(cursor=None, stage="resync"))
    if mailbox.state != PAUSED:
        mailbox.state = IDLE

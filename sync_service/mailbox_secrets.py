"""Stored mailbox secrets: re-encrypting them all under a new ``CRM_SECRET_KEY``, replacing one.

``crm-sync secret-key rotate`` → ``rotate_secrets``; ``crm-sync mailbox secret NAME`` → ``replace_secret``.
Both run in the caller's transaction: a failure changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_store.models import Mailbox
from crm_store.secrets import SecretBox
from sync_service.connectors.registry import needs_secret, open_connector
from sync_service.errors import ConfigError
from sync_service.mailboxes import redact_url


@dataclass(frozen=True)
class Rotation:
    rotated: int  # secrets re-encrypted under the first key
    current: int  # secrets that were under it already


def rotate_secrets(session: Session, keys: Sequence[str]) -> Rotation:
    """Re-encrypt every stored secret that is not under the first key of ``keys`` yet.

    Running it again changes nothing. If any secret decrypts with none of the keys, ``ConfigError`` names its
    mailboxes (all of them, so that one run tells the whole story) and the caller's transaction rolls back."""
    box = SecretBox(keys)
    rows = session.execute(select(Mailbox.id, Mailbox.name).where(Mailbox.secret.is_not(None)).order_by(Mailbox.name))
    rotated, current, unreadable = 0, 0, []
    for mailbox_id, name in rows.all():
        try:
            if _rotate_one(session, box, mailbox_id):
                rotated += 1
            else:
                current += 1
        except ConfigError:
            unreadable.append(name)
    if unreadable:
        raise ConfigError(
            f"the secret of mailbox {', '.join(unreadable)} cannot be decrypted with any key of CRM_SECRET_KEY "
            "(add the key it was stored with, or replace it: crm-sync mailbox secret NAME); nothing was changed"
        )
    return Rotation(rotated, current)


def _rotate_one(session: Session, box: SecretBox, mailbox_id: int) -> bool:
    """Re-encrypt one mailbox's secret; False if it is under the first key already.

    Written only if it is still the one read: a sync that stores a rotated OAuth2 refresh token meanwhile
    (``runner._keep_rotated_secret``) must not have it overwritten by the old one, which the provider may
    no longer accept. The newer secret is then read and re-encrypted in turn."""
    while True:
        token = session.scalar(select(Mailbox.secret).where(Mailbox.id == mailbox_id))
        if token is None or box.is_current(token):
            return False
        result = session.execute(
            update(Mailbox).where(Mailbox.id == mailbox_id, Mailbox.secret == token).values(secret=box.rotate(token))
        )
        if result.rowcount:  # type: ignore[attr-defined]
            return True


def mailbox_source(session: Session, name: str) -> str:
    """The source URL of the mailbox ``name`` (it decides whether a secret is asked for)."""
    source = session.scalar(select(Mailbox.source_url).where(Mailbox.name == name))
    if source is None:
        raise ConfigError(f"no mailbox named {name!r}")
    return source


def replace_secret(session: Session, name: str, secret: str | None, keys: Sequence[str]) -> Mailbox:
    """Store ``secret`` as the mailbox's new secret (a password changed at the provider, a new refresh token).

    Its state, folders and cursors stay: the next sync goes on from where the last one stopped."""
    mailbox = session.scalar(select(Mailbox).where(Mailbox.name == name))
    if mailbox is None:
        raise ConfigError(f"no mailbox named {name!r}")
    if not needs_secret(mailbox.source_url):
        raise ConfigError(f"mailbox {name} ({redact_url(mailbox.source_url)}) uses no secret")
    if not secret:
        raise ConfigError(f"mailbox {name}: the new secret is empty")
    open_connector(mailbox.source_url, secret).close()  # checks what it can offline (an OAuth2 grant's JSON)
    mailbox.secret = SecretBox(keys).encrypt(secret)
    return mailbox

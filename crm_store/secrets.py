"""Mailbox secrets encrypted at rest with ``CRM_SECRET_KEY`` (Fernet; several keys = rotation).

Rotation: ``CRM_SECRET_KEY=NEW,OLD`` encrypts with NEW and still decrypts what OLD encrypted; ``rotate``
re-encrypts a secret under NEW (``crm-sync secret-key rotate`` does it for every mailbox), after which OLD can go.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from sync_service.errors import ConfigError


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


class SecretBox:
    """Encrypts with the first key, decrypts with any of them."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ConfigError(
                "CRM_SECRET_KEY is not set; it is needed to store mailbox secrets "
                "(create one with: crm-sync secret-key)"
            )
        try:
            fernets = [Fernet(k.encode("ascii")) for k in keys]
        except (ValueError, UnicodeEncodeError):
            raise ConfigError("CRM_SECRET_KEY is not a valid Fernet key (32 url-safe base64 bytes)") from None
        self._first, self._fernet = fernets[0], MultiFernet(fernets)

    def encrypt(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode("utf-8")
        except InvalidToken:
            raise ConfigError("a stored mailbox secret cannot be decrypted with CRM_SECRET_KEY") from None

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt ``token`` under the first (newest) key; ``ConfigError`` if no key decrypts it."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken:
            raise ConfigError("a stored mailbox secret cannot be decrypted with CRM_SECRET_KEY") from None

    def is_current(self, token: bytes) -> bool:
        """Whether ``token`` is encrypted under the first key already (``rotate`` would only re-encrypt it)."""
        try:
            self._first.decrypt(token)
        except InvalidToken:
            return False
        return True

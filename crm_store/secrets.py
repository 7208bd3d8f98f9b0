"""Mailbox secrets encrypted at rest with ``CRM_SECRET_KEY`` (Fernet; several keys = rotation)."""

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
            self._fernet = MultiFernet([Fernet(k.encode("ascii")) for k in keys])
        except (ValueError, UnicodeEncodeError):
            raise ConfigError("CRM_SECRET_KEY is not a valid Fernet key (32 url-safe base64 bytes)") from None

    def encrypt(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode("utf-8")
        except InvalidToken:
            raise ConfigError("a stored mailbox secret cannot be decrypted with CRM_SECRET_KEY") from None

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt ``token`` under the first (newest) key."""
        return self._fernet.rotate(token)

"""Dashboard settings from the environment, read when the dashboard starts (never at import).

| variable | meaning |
|---|---|
| ``CRM_ADMIN_PASSWORD_HASH`` | the admin password's hash (``crm-sync dashboard hash-password``) |
| ``CRM_ADMIN_TOKEN`` | or / and a long random token (at least 16 characters), also a Bearer token for ``/metrics`` |
| ``CRM_METRICS_TOKEN`` | a Bearer token that opens ``/metrics`` only (for the Prometheus scraper) |
| ``CRM_DASHBOARD_SECRET`` | signs session cookies; default: derived from ``CRM_SECRET_KEY``, else random per start |
| ``CRM_DASHBOARD_SECURE_COOKIES`` | ``auto`` (Secure when served over https), ``true`` or ``false`` |
| ``CRM_DASHBOARD_SESSION_HOURS`` | how long a login lasts (default 8) |
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from sync_service.dashboard.alerts import AlertConfig
from sync_service.dashboard.auth import check_hash_format
from sync_service.errors import ConfigError

SecureCookies = Literal["auto", "true", "false"]
_MIN_TOKEN = 16


@dataclass(frozen=True)
class DashboardConfig:
    password_hash: str | None
    token: str | None
    session_key: bytes
    metrics_token: str | None = None
    secure_cookies: SecureCookies = "auto"
    session_seconds: int = 8 * 3600
    alerts: AlertConfig = field(default_factory=AlertConfig)
    alert_check_seconds: float = 60.0  # the webhook loop's period (only when a webhook URL is set)

    @property
    def has_login(self) -> bool:
        return bool(self.password_hash or self.token)


def _session_key(env: Mapping[str, str], password_hash: str | None, token: str | None) -> bytes:
    """The cookie signing key. It also covers the credentials, so changing them logs every session out."""
    secret = env.get("CRM_DASHBOARD_SECRET", "").strip()
    if not secret:
        keys = [k.strip() for k in env.get("CRM_SECRET_KEY", "").split(",") if k.strip()]
        secret = keys[0] if keys else ""
    base = secret.encode() if secret else os.urandom(32)  # no secret configured: sessions end with the process
    token_digest = hashlib.sha256((token or "").encode()).hexdigest()
    material = f"crm-sync dashboard session v1\0{password_hash or ''}\0{token_digest}".encode()
    return hmac.new(base, material, hashlib.sha256).digest()


def load_dashboard_config(env: Mapping[str, str] | None = None) -> DashboardConfig:
    """Read and check the dashboard's variables; a bad value is a one-line ``ConfigError``."""
    env = os.environ if env is None else env
    password_hash = env.get("CRM_ADMIN_PASSWORD_HASH", "").strip() or None
    token = env.get("CRM_ADMIN_TOKEN", "").strip() or None
    metrics_token = env.get("CRM_METRICS_TOKEN", "").strip() or None
    if password_hash is not None:
        check_hash_format(password_hash)
    for name, value in (("CRM_ADMIN_TOKEN", token), ("CRM_METRICS_TOKEN", metrics_token)):
        if value is not None and len(value) < _MIN_TOKEN:
            raise ConfigError(f"{name} must be at least {_MIN_TOKEN} characters long")
    secure = (env.get("CRM_DASHBOARD_SECURE_COOKIES") or "auto").strip().lower()
    if secure not in ("auto", "true", "false"):
        raise ConfigError(f"CRM_DASHBOARD_SECURE_COOKIES must be auto, true or false, got {secure!r}")
    hours_raw = (env.get("CRM_DASHBOARD_SESSION_HOURS") or "8").strip()
    try:
        hours = float(hours_raw)
    except ValueError:
        raise ConfigError(f"CRM_DASHBOARD_SESSION_HOURS must be a number, got {hours_raw!r}") from None
    if not 0 < hours <= 24 * 30:
        raise ConfigError("CRM_DASHBOARD_SESSION_HOURS must be between 0 and 720")
    return DashboardConfig(
        password_hash=password_hash,
        token=token,
        session_key=_session_key(env, password_hash, token),
        metrics_token=metrics_token,
        secure_cookies=secure,  # type: ignore[arg-type]
        session_seconds=int(hours * 3600),
        alerts=AlertConfig.from_env(env),
    )

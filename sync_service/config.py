"""Configuration from the environment (SPEC §5). Read explicitly by the CLI / workers, never at import."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from sync_service.errors import ConfigError
from sync_service.matching.model import AutoCreatePolicy

_POLICIES = ("none", "account-domains", "all")


@dataclass(frozen=True)
class Settings:
    database_url: str
    data_dir: Path
    broker_url: str | None = None  # None: embedded in-process queue
    internal_domains: frozenset[str] = frozenset()
    auto_create: AutoCreatePolicy = "account-domains"
    secret_keys: tuple[str, ...] = ()  # first encrypts; all decrypt (rotation)
    window_days_back: int = 90
    window_days_ahead: int = 180
    max_message_bytes: int = 50 * 1024 * 1024
    max_attachment_bytes: int = 25 * 1024 * 1024
    max_occurrences: int = 1000
    batch_size: int = 500
    phone_region: str = "US"
    extra: Mapping[str, str] = field(default_factory=dict)
    # dramatiq's Prometheus middleware in the Redis workers (off when None; see docs/workers.md)
    worker_metrics_dir: Path | None = None
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 9191  # 0: no HTTP endpoint of the workers' own
    # days skipped mail is kept for re-matching before `crm-sync purge skipped` removes it (None: no default)
    skipped_retention_days: int | None = None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {value}")
    return value


def _optional_int(env: Mapping[str, str], name: str) -> int | None:
    """A whole number that may be left unset (``None``)."""
    return None if (env.get(name) or "").strip() == "" else _int(env, name, 0)


def _domains(raw: str | None) -> frozenset[str]:
    if not raw:
        return frozenset()
    return frozenset(d.strip().lower().lstrip("@") for d in raw.replace(";", ",").split(",") if d.strip())


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value > 65535:
        raise ConfigError(f"{name} must be a port number (0 to 65535), got {value}")
    return value


def load_env_file() -> Path | None:
    """Read the `.env` file of the working directory (or the nearest parent that has one) into the environment.

    Variables already set win. Returns the file read, if any. The search starts from the working directory,
    never from where crm-sync is installed.
    """
    from dotenv import find_dotenv, load_dotenv

    found = find_dotenv(usecwd=True)
    if not found:
        return None
    load_dotenv(found, override=False)
    return Path(found)


def load_settings(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Settings from ``env`` (default: ``os.environ``). Paths default to the working directory."""
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    policy = env.get("CRM_AUTO_CREATE", "account-domains").strip().lower() or "account-domains"
    if policy not in _POLICIES:
        raise ConfigError(f"CRM_AUTO_CREATE must be one of {', '.join(_POLICIES)}, got {policy!r}")
    keys = tuple(k.strip() for k in env.get("CRM_SECRET_KEY", "").split(",") if k.strip())
    return Settings(
        database_url=env.get("CRM_DATABASE_URL") or f"sqlite:///{cwd / 'crm-sync.db'}",
        data_dir=Path(env.get("CRM_DATA_DIR") or cwd / "crm-data").expanduser(),
        broker_url=env.get("CRM_BROKER_URL") or None,
        internal_domains=_domains(env.get("CRM_INTERNAL_DOMAINS")),
        auto_create=cast(AutoCreatePolicy, policy),
        secret_keys=keys,
        window_days_back=_int(env, "CRM_SYNC_WINDOW_PAST_DAYS", 90),
        window_days_ahead=_int(env, "CRM_SYNC_WINDOW_FUTURE_DAYS", 180),
        max_message_bytes=_int(env, "CRM_MAX_MESSAGE_BYTES", 50 * 1024 * 1024),
        max_attachment_bytes=_int(env, "CRM_MAX_ATTACHMENT_BYTES", 25 * 1024 * 1024),
        max_occurrences=_int(env, "CRM_MAX_OCCURRENCES", 1000),
        batch_size=max(1, _int(env, "CRM_BATCH_SIZE", 500)),
        phone_region=(env.get("CRM_PHONE_REGION") or "US").upper(),
        worker_metrics_dir=cwd / Path(raw_dir).expanduser() if (raw_dir := env.get("CRM_WORKER_METRICS_DIR")) else None,
        worker_metrics_host=(env.get("CRM_WORKER_METRICS_HOST") or "127.0.0.1").strip(),
        worker_metrics_port=_port(env, "CRM_WORKER_METRICS_PORT", 9191),
        skipped_retention_days=_optional_int(env, "CRM_SKIPPED_RETENTION_DAYS"),
    )

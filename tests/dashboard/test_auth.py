"""Password hashes, session cookies, the login throttle, the dashboard's settings, and the CLI (pure / in-process)."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest

from sync_service.dashboard.auth import (
    LoginThrottle,
    Session,
    SessionCodec,
    bearer_matches,
    check_credentials,
    hash_password,
    verify_password,
)
from sync_service.dashboard.config import load_dashboard_config
from sync_service.errors import ConfigError
from tests.dashboard.conftest import _HASH, PASSWORD


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_hashes_are_salted_and_verified_in_constant_time() -> None:
    assert verify_password(_HASH, PASSWORD) and not verify_password(_HASH, PASSWORD + " ")
    other = hash_password(PASSWORD)
    assert other != _HASH and other.startswith("scrypt:16384:8:1:") and "$" not in other
    with pytest.raises(ConfigError, match="at least 8"):
        hash_password("short")


@pytest.mark.parametrize(
    "stored",
    ["plain-password", "scrypt:16384:8:1:c2FsdA", "scrypt:1000:8:1:c2FsdA:" + "A" * 43,
     "scrypt:4194304:8:1:c2FsdA:" + "A" * 43, "scrypt:16384:8:1:!!:" + "A" * 43, "bcrypt:16384:8:1:c2FsdA:xx"],
)  # fmt: skip
def test_unusable_hashes_are_refused_with_one_line(stored: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_dashboard_config({"CRM_ADMIN_PASSWORD_HASH": stored})
    assert "\n" not in str(error.value) and "CRM_ADMIN_PASSWORD_HASH" in str(error.value)


def test_credentials_and_bearer_tokens() -> None:
    token = "t" * 20
    assert check_credentials(_HASH, None, PASSWORD) and not check_credentials(_HASH, None, token)
    assert check_credentials(None, token, token) and not check_credentials(None, token, PASSWORD)
    assert check_credentials(_HASH, token, token) and check_credentials(_HASH, token, PASSWORD)
    assert bearer_matches(f"Bearer {token}", None, token)
    assert not bearer_matches(f"Bearer {token}x", token) and not bearer_matches(None, token)
    assert not bearer_matches(f"Basic {token}", token) and not bearer_matches("Bearer ", None)


def test_session_cookies_are_signed_expire_and_can_be_revoked() -> None:
    clock = Clock()
    codec = SessionCodec(b"k" * 32, clock=clock)
    session = Session.new(3600, clock(), authenticated=True).with_flash("done")
    cookie = codec.encode(session)
    assert codec.decode(cookie) == session
    payload, mac = cookie.split(".")
    assert codec.decode(payload[:-2] + "AA." + mac) is None  # changed payload
    assert SessionCodec(b"x" * 32, clock=clock).decode(cookie) is None  # another key
    assert codec.decode("garbage") is None and codec.decode(None) is None and codec.decode("a.b.c") is None
    clock.now += 3601
    assert codec.decode(cookie) is None  # expired
    clock.now -= 3601
    codec.revoke(session)
    assert codec.decode(cookie) is None


def test_the_login_throttle_forgets_after_its_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(attempts=3, window=60, clock=clock)
    for _ in range(3):
        assert not throttle.blocked("1.2.3.4")
        throttle.failed("1.2.3.4")
    assert throttle.blocked("1.2.3.4") and not throttle.blocked("5.6.7.8")
    clock.now += 61
    assert not throttle.blocked("1.2.3.4")


def test_dashboard_settings() -> None:
    config = load_dashboard_config({"CRM_ADMIN_TOKEN": "a" * 16, "CRM_SECRET_KEY": "key1,key2"})
    assert config.has_login and config.secure_cookies == "auto" and config.session_seconds == 8 * 3600
    same = load_dashboard_config({"CRM_ADMIN_TOKEN": "a" * 16, "CRM_SECRET_KEY": "key1"})
    assert same.session_key == config.session_key  # stable across restarts: sessions survive them
    rotated = load_dashboard_config({"CRM_ADMIN_TOKEN": "b" * 16, "CRM_SECRET_KEY": "key1"})
    assert rotated.session_key != config.session_key  # a new credential logs every session out
    assert not load_dashboard_config({}).has_login
    for env, message in (
        ({"CRM_ADMIN_TOKEN": "short"}, "at least 16"),
        ({"CRM_DASHBOARD_SECURE_COOKIES": "maybe"}, "auto, true or false"),
        ({"CRM_DASHBOARD_SESSION_HOURS": "forever"}, "a number"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_dashboard_config(env)


def test_cli_hash_password_reads_standard_input(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(sys, "stdin", io.StringIO("my admin password\n"))
    result = cli("dashboard", "hash-password")
    assert result.code == 0
    assert verify_password(result.out.strip(), "my admin password")


def test_cli_dashboard_refuses_to_start_without_a_login(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    for name in ("CRM_ADMIN_PASSWORD_HASH", "CRM_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert cli("init").code == 0
    result = cli("dashboard")
    assert result.code == 1 and result.err.count("\n") == 1
    assert "CRM_ADMIN_PASSWORD_HASH" in result.err and "CRM_ADMIN_TOKEN" in result.err
    monkeypatch.setenv("CRM_ADMIN_PASSWORD_HASH", "not-a-hash")
    bad = cli("dashboard")
    assert bad.code == 1 and "hash-password" in bad.err


def test_cli_dashboard_serves_with_uvicorn(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import uvicorn

    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda api, **options: served.update(api=api, **options))
    monkeypatch.setenv("CRM_ADMIN_PASSWORD_HASH", _HASH)
    assert cli("init").code == 0
    result = cli("dashboard", "--port", "9123")
    assert result.code == 0, result.err
    assert served["host"] == "127.0.0.1" and served["port"] == 9123 and served["proxy_headers"] is True
    assert served["forwarded_allow_ips"] == "127.0.0.1"

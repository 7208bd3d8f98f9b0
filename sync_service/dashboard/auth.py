"""Login: the admin password (stored as a salted scrypt hash) or token, and signed session cookies.

- Password hash format: ``scrypt:N:r:p:SALT:HASH`` (SALT and HASH base64url), made by
  ``crm-sync dashboard hash-password``. No ``$`` in it, so it survives shells, ``.env`` files and compose files.
- Every comparison is constant-time (``hmac.compare_digest``).
- A session is a signed cookie (HMAC-SHA256, stdlib only): ``base64url(json) "." base64url(mac)``. It carries a
  random session id, the session's CSRF token, whether it is logged in, and its expiry. Logging in issues a new
  session id and CSRF token (no fixation); logging out revokes the id in this process.
- Failed logins are limited per client address (``LoginThrottle``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sync_service.errors import ConfigError

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _SALT_BYTES, _KEY_BYTES = 2**14, 8, 1, 16, 32
_MAX_N = 2**20  # a hash naming more work than this is refused (it would let a config stall every login)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_KEY_BYTES, maxmem=256 * r * n + 2**20
    )


def hash_password(password: str) -> str:
    """A new salted scrypt hash of ``password`` for ``CRM_ADMIN_PASSWORD_HASH``."""
    if len(password) < 8:
        raise ConfigError("choose a password of at least 8 characters")
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return f"scrypt:{_SCRYPT_N}:{_SCRYPT_R}:{_SCRYPT_P}:{_b64(salt)}:{_b64(digest)}"


def _parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.split(":")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ConfigError("CRM_ADMIN_PASSWORD_HASH is not a hash made by: crm-sync dashboard hash-password")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except (ValueError, binascii.Error):
        raise ConfigError("CRM_ADMIN_PASSWORD_HASH is damaged: run crm-sync dashboard hash-password") from None
    sane = 2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16
    if not (sane and salt and len(digest) == _KEY_BYTES):
        raise ConfigError("CRM_ADMIN_PASSWORD_HASH has unsupported parameters: make a new one")
    return n, r, p, salt, digest


def check_hash_format(stored: str) -> None:
    """Raise ``ConfigError`` (one line) unless ``stored`` is a usable password hash."""
    _parse_hash(stored)


def verify_password(stored: str, password: str) -> bool:
    n, r, p, salt, digest = _parse_hash(stored)
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), digest)


def check_credentials(password_hash: str | None, token: str | None, given: str) -> bool:
    """True when ``given`` is the admin password or the admin token. Both checks always run when configured,
    so the time taken does not tell which one exists."""
    ok = False
    if token is not None:
        ok |= hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(token.encode()).digest())
    if password_hash is not None:
        ok |= verify_password(password_hash, given)
    return ok


def bearer_matches(header: str | None, *tokens: str | None) -> bool:
    """``Authorization: Bearer T`` where T is one of ``tokens`` (the ones that are set)."""
    if not header or not header.lower().startswith("bearer "):
        return False
    given = hashlib.sha256(header[7:].strip().encode()).digest()
    return any(hmac.compare_digest(given, hashlib.sha256(t.encode()).digest()) for t in tokens if t)


@dataclass(frozen=True)
class Session:
    sid: str
    csrf: str
    expires: int
    authenticated: bool = False
    flash: str | None = None  # one message shown on the next page

    @classmethod
    def new(cls, ttl_seconds: int, now: float, authenticated: bool = False) -> Session:
        return cls(secrets.token_urlsafe(18), secrets.token_urlsafe(32), int(now) + ttl_seconds, authenticated)

    def with_flash(self, message: str | None) -> Session:
        return replace(self, flash=message)


@dataclass
class SessionCodec:
    """Signs and checks session cookies; remembers the ids revoked by a logout (until they expire)."""

    key: bytes
    clock: Callable[[], float] = time.time
    _revoked: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self.key, payload.encode("ascii"), hashlib.sha256).digest())

    def encode(self, session: Session) -> str:
        body = {"sid": session.sid, "csrf": session.csrf, "exp": session.expires, "auth": session.authenticated}
        if session.flash:
            body["flash"] = session.flash[:300]
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def decode(self, cookie: str | None) -> Session | None:
        """The session, or None when the cookie is missing, forged, expired or revoked."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 4096:
            return None
        payload, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            body = json.loads(_unb64(payload))
            session = Session(
                str(body["sid"]), str(body["csrf"]), int(body["exp"]), bool(body["auth"]), body.get("flash")
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if session.expires <= self.clock():
            return None
        with self._lock:
            if session.sid in self._revoked:
                return None
        return session

    def revoke(self, session: Session) -> None:
        now = self.clock()
        with self._lock:
            self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp > now}
            self._revoked[session.sid] = session.expires


@dataclass
class LoginThrottle:
    """At most ``attempts`` failed logins per client address within ``window`` seconds."""

    attempts: int = 10
    window: float = 600.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _recent(self, client: str, now: float) -> deque[float]:
        recent = self._failures.setdefault(client, deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        return recent

    def blocked(self, client: str) -> bool:
        with self._lock:
            return len(self._recent(client, self.clock())) >= self.attempts

    def failed(self, client: str) -> None:
        with self._lock:
            now = self.clock()
            self._recent(client, now).append(now)
            if len(self._failures) > 10_000:  # many addresses: forget the quiet ones
                self._failures = {c: d for c, d in self._failures.items() if d and d[-1] > now - self.window}

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

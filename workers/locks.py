"""Leases (one sync per mailbox at a time) and enqueue markers, in process or in Redis.

A lease is a lock with a time to live that a background thread refreshes while the work runs. A worker that
dies (SIGKILL, power loss) stops refreshing, so its lease expires after ``ttl`` seconds and the scheduler can
relaunch the mailbox: a mailbox in state ``syncing`` whose lease is gone is stuck.

If a refresh finds the lease gone (Redis restarted, or it expired while the process was frozen), the lease is
*lost*: ``check()`` raises ``LockLost`` and the sync stops at its next page boundary. Everything stored so far
was committed with its cursor, so the retry — or another worker — goes on from there.

Markers (``claim`` / ``clear``) remember "a message for this is already queued" so that the scheduler does not
enqueue the same mailbox every tick while a message waits in the queue. They expire by themselves.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from typing import Protocol

import redis

PREFIX = "crm-sync:"

_REFRESH = """
if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) end
return 0
"""


class LockLost(RuntimeError):
    """The lease of this work expired or vanished: stop, the work will be re-driven."""


class Lease(Protocol):
    key: str

    def check(self) -> None:
        """Raise ``LockLost`` if the lease is no longer ours."""
        ...

    def release(self) -> None: ...


class Locks(Protocol):
    def acquire(self, key: str, ttl: float) -> Lease | None:
        """A lease on ``key``, or ``None`` when someone else holds it."""
        ...

    def is_locked(self, key: str) -> bool: ...

    def any_locked(self, prefix: str) -> bool:
        """True while some lease whose key starts with ``prefix`` is held."""
        ...

    def claim(self, key: str, ttl: float) -> bool:
        """Set marker ``key`` for ``ttl`` seconds; False if it is already set."""
        ...

    def clear(self, key: str) -> None: ...


class _LocalLease:
    def __init__(self, owner: LocalLocks, key: str, token: str) -> None:
        self.owner, self.key, self.token = owner, key, token

    def check(self) -> None:
        if self.owner.holder(self.key) != self.token:
            raise LockLost(f"lock {self.key} was lost")

    def release(self) -> None:
        self.owner.drop(self.key, self.token)


class LocalLocks:
    """In-process leases and markers (embedded mode): one process, so a mutex is enough; no expiry needed."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held: dict[str, str] = {}
        self._marks: dict[str, float] = {}

    def acquire(self, key: str, ttl: float) -> _LocalLease | None:
        with self._mutex:
            if key in self._held:
                return None
            token = uuid.uuid4().hex
            self._held[key] = token
        return _LocalLease(self, key, token)

    def holder(self, key: str) -> str | None:
        with self._mutex:
            return self._held.get(key)

    def drop(self, key: str, token: str) -> None:
        with self._mutex:
            if self._held.get(key) == token:
                del self._held[key]

    def is_locked(self, key: str) -> bool:
        return self.holder(key) is not None

    def any_locked(self, prefix: str) -> bool:
        with self._mutex:
            return any(key.startswith(prefix) for key in self._held)

    def claim(self, key: str, ttl: float) -> bool:
        now = time.monotonic()
        with self._mutex:
            if self._marks.get(key, 0.0) > now:
                return False
            self._marks[key] = now + ttl
            return True

    def clear(self, key: str) -> None:
        with self._mutex:
            self._marks.pop(key, None)


class _RedisLease:
    """A Redis key holding our token; a daemon thread extends its TTL every third of it."""

    def __init__(self, client: redis.Redis, key: str, token: str, ttl: float) -> None:
        self.client, self.key, self.token, self.ttl = client, key, token, ttl
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._last_ok = time.monotonic()
        self._refresh = client.register_script(_REFRESH)
        self._thread = threading.Thread(target=self._keep_alive, name=f"lease {key}", daemon=True)
        self._thread.start()

    def _keep_alive(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                alive = self._refresh(keys=[PREFIX + "lock:" + self.key], args=[self.token, int(self.ttl * 1000)])
            except redis.RedisError:
                alive = time.monotonic() - self._last_ok < self.ttl  # Redis away: ours until the TTL would end
            else:
                self._last_ok = time.monotonic()
            if not alive:
                self._lost.set()
                return

    def check(self) -> None:
        if self._lost.is_set():
            raise LockLost(f"lock {self.key} was lost (expired, or Redis restarted)")

    def release(self) -> None:
        self._stop.set()
        with contextlib.suppress(redis.RedisError):  # unreachable: it expires by itself
            self.client.register_script(_RELEASE)(keys=[PREFIX + "lock:" + self.key], args=[self.token])


class RedisLocks:
    """Leases and markers in Redis, shared by every worker process and the scheduler."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def acquire(self, key: str, ttl: float) -> _RedisLease | None:
        token = uuid.uuid4().hex
        if not self.client.set(PREFIX + "lock:" + key, token, nx=True, px=int(ttl * 1000)):
            return None
        return _RedisLease(self.client, key, token, ttl)

    def is_locked(self, key: str) -> bool:
        return bool(self.client.exists(PREFIX + "lock:" + key))

    def any_locked(self, prefix: str) -> bool:
        pattern = PREFIX + "lock:" + prefix.replace("*", r"\*") + "*"
        return next(iter(self.client.scan_iter(match=pattern, count=1000)), None) is not None

    def claim(self, key: str, ttl: float) -> bool:
        return bool(self.client.set(PREFIX + "queued:" + key, "1", nx=True, px=max(1, int(ttl * 1000))))

    def clear(self, key: str) -> None:
        self.client.delete(PREFIX + "queued:" + key)

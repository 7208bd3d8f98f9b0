"""Leases and markers: in process, and in a real Redis (refresh, expiry, loss on a restart)."""

from __future__ import annotations

import time

import pytest
import redis

from tests.support.servers import RedisServer
from workers.locks import LocalLocks, LockLost, RedisLocks


def _wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_local_lock_is_exclusive_until_released() -> None:
    locks = LocalLocks()
    lease = locks.acquire("mailbox:1", 5)
    assert lease is not None and locks.is_locked("mailbox:1")
    assert locks.acquire("mailbox:1", 5) is None
    assert locks.acquire("mailbox:2", 5) is not None
    lease.check()
    lease.release()
    assert not locks.is_locked("mailbox:1") and locks.acquire("mailbox:1", 5) is not None


def test_local_markers_expire() -> None:
    locks = LocalLocks()
    assert locks.claim("sync:1", 0.2) and not locks.claim("sync:1", 0.2)
    _wait_for(lambda: locks.claim("sync:1", 0.2))
    locks.clear("sync:1")
    assert locks.claim("sync:1", 5)


def test_redis_lease_is_refreshed_while_held_and_expires_when_abandoned(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    locks = RedisLocks(client)
    lease = locks.acquire("mailbox:7", 0.6)
    assert lease is not None
    assert locks.acquire("mailbox:7", 0.6) is None  # another worker, another process: refused
    time.sleep(1.5)  # well past the TTL: the refresher keeps it alive
    assert locks.is_locked("mailbox:7")
    lease.check()
    lease.release()
    assert not locks.is_locked("mailbox:7")

    crashed = locks.acquire("mailbox:8", 0.6)
    assert crashed is not None
    crashed._stop.set()  # the process died: nobody refreshes any more
    _wait_for(lambda: not locks.is_locked("mailbox:8"))
    assert locks.acquire("mailbox:8", 0.6) is not None


def test_a_redis_restart_loses_the_lease_and_the_holder_notices() -> None:
    server = RedisServer()
    server.start()
    try:
        client = redis.Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=1)
        lease = RedisLocks(client).acquire("mailbox:1", 0.6)
        assert lease is not None
        server.restart()  # empty again: the lock key is gone
        with pytest.raises(LockLost):
            _wait_for(lambda: bool(lease.check()), timeout=10)
    finally:
        server.close()


def test_redis_markers(redis_url: str) -> None:
    locks = RedisLocks(redis.Redis.from_url(redis_url))
    assert locks.claim("sync_mailbox:1", 30) and not locks.claim("sync_mailbox:1", 30)
    locks.clear("sync_mailbox:1")
    assert locks.claim("sync_mailbox:1", 30)


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_any_locked_sees_leases_by_prefix(kind: str, request: pytest.FixtureRequest) -> None:
    locks = LocalLocks() if kind == "local" else RedisLocks(redis.Redis.from_url(request.getfixturevalue("redis_url")))
    assert not locks.any_locked("process:")
    exclusive = locks.acquire("process", 5)
    assert exclusive is not None and not locks.any_locked("process:")  # "process" is not a mailbox lease
    lease = locks.acquire("process:7", 5)
    assert lease is not None and locks.any_locked("process:") and not locks.any_locked("process:8")
    lease.release()
    exclusive.release()
    assert not locks.any_locked("process:")

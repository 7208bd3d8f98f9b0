"""Is any worker alive, and which ``syncing`` mailboxes are stuck? Read from Redis (read-only), for ``status``.

**Workers.** dramatiq's Redis broker keeps a heartbeat per broker (one per ``crm-sync worker`` process) in the
sorted set ``dramatiq:__heartbeats__``: member = the broker's id, score = the time of its last call in ms
(``dramatiq/brokers/redis/dispatch.lua`` adds it on *every* call). An idle worker process polls each of its
queues at least every ``CRM_WORKER_IDLE_POLL_MS`` (default 100 ms), a busy one still polls its delay queues, so
a live worker's heartbeat is never more than about a second old. dramatiq itself waits 60 s
(``heartbeat_timeout``) before it gives a silent worker's messages back; that is far too long here, because a
process that only *sends* messages — the scheduler, ``crm-sync watch``, a resync from the CLI — gets a heartbeat
too, each time it sends (the scheduler sends at least every minute). A short window (``ALIVE_SECONDS``, 10 s,
or five idle polls if that is longer) keeps a sender from passing for a worker except for those few seconds
after it sent. Nothing here writes to dramatiq's keys.

**Stuck mailboxes.** A sync holds the Redis lease ``crm-sync:lock:mailbox:<id>`` (``workers.locks``,
``workers.tasks.mailbox_lock``) from before it marks the mailbox ``syncing`` until after it records the end, and
a killed worker's lease expires after ``CRM_LOCK_TTL``. So a mailbox whose stored state is ``syncing`` while
no lease is held is stuck — unless its sync ended between the two reads, which the caller checks by reading
the state again (``sync_service.status``, as the scheduler does).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis

from sync_service.config import Settings
from workers.broker import NAMESPACE, broker_mode, redis_client
from workers.locks import RedisLocks
from workers.options import idle_poll_ms
from workers.tasks import mailbox_lock

ALIVE_SECONDS = 10.0  # a heartbeat younger than this is a live worker process


def heartbeats_key(namespace: str = NAMESPACE) -> str:
    return f"{namespace}:__heartbeats__"


def alive_window(idle_poll: int | None = None) -> float:
    """Seconds within which a live worker has certainly polled: ``ALIVE_SECONDS``, or five idle polls
    (``CRM_WORKER_IDLE_POLL_MS``) if the workers were told to poll that rarely."""
    poll_ms = idle_poll_ms() if idle_poll is None else idle_poll
    return max(ALIVE_SECONDS, 5 * poll_ms / 1000)


def _millis(now: datetime) -> float:
    return now.timestamp() * 1000


def live_workers(client: redis.Redis, now: datetime, within: float = ALIVE_SECONDS, namespace: str = NAMESPACE) -> int:
    """How many dramatiq brokers had a heartbeat in the ``within`` seconds before ``now``: the live worker
    processes (plus, for a few seconds after it sent something, a process that only sends)."""
    return int(client.zcount(heartbeats_key(namespace), _millis(now) - within * 1000, "+inf"))


def last_heartbeat(client: redis.Redis, namespace: str = NAMESPACE) -> datetime | None:
    """The newest heartbeat of any process that used the queues (a worker's, or a sender's), or None."""
    newest = client.zrevrange(heartbeats_key(namespace), 0, 0, withscores=True)
    return datetime.fromtimestamp(float(newest[0][1]) / 1000, UTC) if newest else None


def stuck_mailboxes(client: redis.Redis, syncing_ids: Collection[int]) -> set[int]:
    """Those of ``syncing_ids`` (mailboxes whose stored state is ``syncing``) that no worker holds the lease of."""
    locks = RedisLocks(client)
    return {mailbox_id for mailbox_id in syncing_ids if not locks.is_locked(mailbox_lock(mailbox_id))}


@dataclass(frozen=True)
class Liveness:
    """One look at Redis for ``collect_status``: ``error`` is set (and the rest is empty) when Redis could not
    be read."""

    alive: int | None
    last_seen: datetime | None
    window: float
    unlocked: frozenset[int] = field(default_factory=frozenset)  # syncing mailboxes with no lease
    error: str | None = None


@dataclass(frozen=True)
class RedisLiveness:
    """Reads ``Liveness`` from the Redis at ``url`` (a client per look, closed after it)."""

    url: str
    window: float = ALIVE_SECONDS
    namespace: str = NAMESPACE

    def __call__(self, syncing_ids: Collection[int], now: datetime) -> Liveness:
        client = redis_client(self.url)
        try:
            unlocked = stuck_mailboxes(client, syncing_ids)
            alive = live_workers(client, now, self.window, self.namespace)
            last = last_heartbeat(client, self.namespace)
        except redis.RedisError as error:
            return Liveness(None, None, self.window, error=f"cannot read the workers: {error}")
        finally:
            client.close()
        return Liveness(alive, last, self.window, frozenset(unlocked))


def redis_liveness(settings: Settings) -> RedisLiveness | None:
    """The reader for ``settings``'s Redis; None in the embedded mode (no workers, no shared locks to read)."""
    if broker_mode(settings) != "redis" or not settings.broker_url:
        return None
    return RedisLiveness(settings.broker_url, alive_window())

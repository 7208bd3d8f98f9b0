"""Is any worker alive, and which ``syncing`` mailboxes are stuck? Read from Redis (read-only), for ``status``.

**Workers.** Each ``crm-sync worker`` process registers itself: ``workers.presence.WorkerPresence`` keeps the
key ``crm-sync:worker:<host>:<pid>`` while its dramatiq worker runs (written every ``BEAT_SECONDS``, expiring
``PRESENCE_TTL`` seconds after the last write, deleted at a clean shutdown). The live workers are those keys,
found with SCAN. Processes that only send messages (the scheduler, ``crm-sync watch``, the CLI) never boot a
worker, so they never count — unlike dramatiq's own heartbeats, which every process that sends gets (see
``workers.presence``). Nothing here writes.

**Stuck mailboxes.** A sync holds the Redis lease ``crm-sync:lock:mailbox:<id>`` (``workers.locks``,
``workers.tasks.mailbox_lock``) from before it marks the mailbox ``syncing`` until after it records the end, and
a killed worker's lease expires after ``CRM_LOCK_TTL``. So a mailbox whose stored state is ``syncing`` while
no lease is held is stuck — unless its sync ended between the two reads, which the caller checks by reading
the state again (``sync_service.status``, as the scheduler does).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

import redis

from sync_service.config import Settings
from workers.broker import broker_mode, redis_client
from workers.locks import RedisLocks
from workers.presence import PRESENCE_TTL, presence_match
from workers.tasks import mailbox_lock


@dataclass(frozen=True)
class Presence:
    """One live worker process, as its key says."""

    key: str
    beat_at: datetime | None  # its last write (None if the record cannot be read)
    record: dict[str, object]


def _record(raw: bytes | str | None) -> dict[str, object]:
    try:
        data = json.loads(raw) if raw is not None else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _time(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def worker_presences(client: redis.Redis) -> list[Presence]:
    """The live worker processes: every ``crm-sync:worker:*`` key (SCAN, not KEYS) still there when read."""
    keys = sorted({k.decode() if isinstance(k, bytes) else str(k) for k in client.scan_iter(presence_match(), 500)})
    if not keys:
        return []
    found = []
    for key, raw in zip(keys, client.mget(keys), strict=True):
        if raw is None:  # expired or deleted between SCAN and MGET
            continue
        record = _record(raw)
        found.append(Presence(key, _time(record.get("beat_at")), record))
    return found


def live_workers(client: redis.Redis) -> int:
    """How many worker processes are registered (``workers.presence``)."""
    return len(worker_presences(client))


def last_beat(presences: Collection[Presence]) -> datetime | None:
    """The newest write of any live worker's key, or None."""
    return max((p.beat_at for p in presences if p.beat_at is not None), default=None)


def stuck_mailboxes(client: redis.Redis, syncing_ids: Collection[int]) -> set[int]:
    """Those of ``syncing_ids`` (mailboxes whose stored state is ``syncing``) that no worker holds the lease of."""
    locks = RedisLocks(client)
    return {mailbox_id for mailbox_id in syncing_ids if not locks.is_locked(mailbox_lock(mailbox_id))}


@dataclass(frozen=True)
class Liveness:
    """One look at Redis for ``collect_status``: ``error`` is set (and the rest is empty) when Redis could not
    be read. ``last_seen``: the newest beat of a live worker; ``window``: how long a killed worker still counts
    (``PRESENCE_TTL``)."""

    alive: int | None
    last_seen: datetime | None
    window: float
    unlocked: frozenset[int] = field(default_factory=frozenset)  # syncing mailboxes with no lease
    error: str | None = None
    stopping: int = 0  # of ``alive``: asked to stop, still finishing the messages they hold


@dataclass(frozen=True)
class RedisLiveness:
    """Reads ``Liveness`` from the Redis at ``url`` (a client per look, closed after it)."""

    url: str
    window: float = PRESENCE_TTL

    def __call__(self, syncing_ids: Collection[int], now: datetime) -> Liveness:
        client = redis_client(self.url)
        try:
            unlocked = stuck_mailboxes(client, syncing_ids)
            presences = worker_presences(client)
        except redis.RedisError as error:
            return Liveness(None, None, self.window, error=f"cannot read the workers: {error}")
        finally:
            client.close()
        stopping = sum(1 for p in presences if p.record.get("stopping_since"))
        return Liveness(len(presences), last_beat(presences), self.window, frozenset(unlocked), stopping=stopping)


def redis_liveness(settings: Settings) -> RedisLiveness | None:
    """The reader for ``settings``'s Redis; None in the embedded mode (no workers, no shared locks to read)."""
    if broker_mode(settings) != "redis" or not settings.broker_url:
        return None
    return RedisLiveness(settings.broker_url)

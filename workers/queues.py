"""Queue numbers for ``status`` and the dead-letter requeue, read from dramatiq's Redis key layout.

For a queue ``q`` the Redis broker keeps (``dramatiq/brokers/redis/dispatch.lua``, namespace ``dramatiq``):

- ``dramatiq:q`` — a list of the ids of messages ready to be fetched;
- ``dramatiq:q.msgs`` — a hash id → message of every message not yet acknowledged: ready *and* fetched by a
  worker (a worker that died keeps its fetched ids in ``dramatiq:__acks__.<worker>.q`` until broker
  maintenance gives them back, ~100 s later);
- ``dramatiq:q.DQ.msgs`` — the same for delayed messages (retries waiting for their backoff);
- ``dramatiq:q.XQ`` (sorted set) and ``dramatiq:q.XQ.msgs`` — dead-lettered messages, kept 7 days.

So: ready = LLEN q; in flight = HLEN q.msgs − ready; delayed = HLEN q.DQ.msgs; dead-lettered = ZCARD q.XQ.
"""

from __future__ import annotations

from typing import Any

import redis
from dramatiq import Message

from sync_service.config import Settings
from workers.actors import QUEUES
from workers.broker import NAMESPACE, Runtime, broker_mode, redis_client

# Options the broker and the retry middleware add to a message; a requeued dead letter starts afresh.
_RUN_STATE = ("retries", "traceback", "requeue_timestamp", "eta", "redis_message_id")


def redis_queue_stats(client: redis.Redis, namespace: str = NAMESPACE) -> dict[str, dict[str, int]]:
    pipe = client.pipeline(transaction=True)
    for queue in QUEUES:
        key = f"{namespace}:{queue}"
        pipe.llen(key)
        pipe.hlen(f"{key}.msgs")
        pipe.hlen(f"{key}.DQ.msgs")
        pipe.zcard(f"{key}.XQ")
    values = pipe.execute()
    stats = {}
    for i, queue in enumerate(QUEUES):
        ready, unacked, delayed, dead = (int(v) for v in values[4 * i : 4 * i + 4])
        stats[queue] = {"ready": ready, "in_flight": max(0, unacked - ready), "delayed": delayed, "dead_lettered": dead}
    return stats


def idle_stats() -> dict[str, dict[str, int]]:
    return {q: {"ready": 0, "in_flight": 0, "delayed": 0, "dead_lettered": 0} for q in QUEUES}


def queue_status(settings: Settings) -> dict[str, Any]:
    """The ``queue`` part of ``status``: the mode, and per queue its numbers (0 in embedded mode when idle:
    the embedded queue lives only inside the command that runs it)."""
    mode = broker_mode(settings)
    if mode == "embedded" or not settings.broker_url:
        return {"mode": "embedded", "queues": idle_stats()}
    client = redis_client(settings.broker_url)
    try:
        return {"mode": "redis", "queues": redis_queue_stats(client)}
    except redis.RedisError as error:
        return {"mode": "redis", "queues": None, "error": f"cannot read the queues: {error}"}
    finally:
        client.close()


def requeue_dead(runtime: Runtime, queues: tuple[str, ...] = QUEUES) -> int:
    """Put every dead-lettered message of ``queues`` back on its queue with a fresh retry budget.

    Each message is enqueued before it leaves the dead-letter set: a crash in between at worst runs it twice,
    which the idempotent actors allow.
    """
    client = runtime.redis
    if client is None:
        raise ValueError("dead letters are requeued in Redis mode only")
    count = 0
    for queue in queues:
        dead_key = f"{NAMESPACE}:{queue}.XQ"
        ids: list[bytes] = list(client.zrange(dead_key, 0, -1))  # type: ignore[arg-type]
        for message_id in ids:
            data: bytes | None = client.hget(f"{dead_key}.msgs", message_id)  # type: ignore[assignment]
            if data is not None:
                old: Message[Any] = Message.decode(data)
                options = {k: v for k, v in old.options.items() if k not in _RUN_STATE}
                fresh: Message[Any] = Message(
                    queue_name=queue,
                    actor_name=old.actor_name,
                    args=old.args,
                    kwargs=old.kwargs,
                    options=options,
                    message_id=old.message_id,
                    message_timestamp=old.message_timestamp,
                )
                runtime.broker.enqueue(fresh)
                count += 1
            client.zrem(dead_key, message_id)
            client.hdel(f"{dead_key}.msgs", message_id)
    return count

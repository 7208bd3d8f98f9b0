"""Queue numbers for ``status`` and the dead-letter requeue, read from dramatiq's Redis key layout.

For a queue ``q`` the Redis broker keeps (``dramatiq/brokers/redis/dispatch.lua``, namespace ``dramatiq``):

- ``dramatiq:q`` — a list of the ids of messages ready to be fetched;
- ``dramatiq:q.msgs`` — a hash id → message of every message not yet acknowledged: ready *and* fetched by a
  worker (a worker that died keeps its fetched ids in ``dramatiq:__acks__.<worker>.q`` until broker
  maintenance gives them back, ~100 s later);
- ``dramatiq:q.DQ.msgs`` — the same for delayed messages (retries waiting for their backoff);
- ``dramatiq:q.XQ`` (sorted set) and ``dramatiq:q.XQ.msgs`` — dead-lettered messages, kept 7 days.

So: ready = LLEN q; in flight = HLEN q.msgs − ready; delayed = HLEN q.DQ.msgs; dead-lettered = ZCARD q.XQ.

``requeue_dead`` puts dead letters back (all of them, those of some queues, or only those about one mailbox),
on the Redis broker and on the embedded ``StubBroker``.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import redis
from dramatiq import Message
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from sync_service.config import Settings
from workers import QUEUES
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


def waiting_work(client: redis.Redis, queue: str, namespace: str = NAMESPACE) -> set[tuple[str, int | None]]:
    """(actor, mailbox id) of the messages waiting in ``queue``: ready to be fetched, or delayed (a retry
    waiting for its backoff). A message a worker has fetched is not waiting: if that worker died, the work is
    relaunched (the scheduler), not waited for."""
    key = f"{namespace}:{queue}"
    found: set[tuple[str, int | None]] = set()
    ready = client.lrange(key, 0, -1)
    for start in range(0, len(ready), _BATCH):
        for data in client.hmget(f"{key}.msgs", ready[start : start + _BATCH]):
            _note_waiting(found, data)
    for _, data in client.hscan_iter(f"{key}.DQ.msgs", count=_BATCH):
        _note_waiting(found, data)
    return found


def _note_waiting(found: set[tuple[str, int | None]], data: bytes | str | None) -> None:
    message = _decode(data.encode() if isinstance(data, str) else data) if data is not None else None
    if message is not None:
        found.add((message.actor_name, mailbox_of(message)))


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


# --------------------------------------------------------------------------------------------- dead letters

# Actors whose first argument is a mailbox id (``workers/actors.py``); ``process_items`` may have none.
MAILBOX_ACTORS = frozenset({"sync_mailbox", "sync_folder", "process_items"})

# dramatiq's ``dispatch.lua`` can move a message *to* the dead letters (``nack``) but has no command to take one
# back. This script does it in one atomic step: it takes the dead letter out of ``<q>.XQ`` / ``<q>.XQ.msgs`` and,
# only if it was still there, enqueues the fresh copy exactly as ``dispatch.lua``'s ``enqueue`` does (``HSET
# <q>.msgs``, ``RPUSH <q>``). Two admins requeueing at once cannot run a message twice, a crash cannot lose one.
# KEYS: <q>.XQ, <q>.XQ.msgs, <q>, <q>.msgs   ARGV: dead id, new id, new message
_REQUEUE_LUA = """
if redis.call("zrem", KEYS[1], ARGV[1]) == 0 then
    return 0
end
redis.call("hdel", KEYS[2], ARGV[1])
redis.call("hset", KEYS[4], ARGV[2], ARGV[3])
redis.call("rpush", KEYS[3], ARGV[2])
return 1
"""
_BATCH = 500


def mailbox_of(message: Message[Any] | MessageProxy) -> int | None:
    """The mailbox a message is about: the first argument of ``sync_mailbox``, ``sync_folder`` and
    ``process_items`` (or their ``mailbox_id`` keyword); None for the other actors and ``process_items()``."""
    if message.actor_name not in MAILBOX_ACTORS:
        return None
    value = message.args[0] if message.args else (message.kwargs or {}).get("mailbox_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _decode(data: bytes) -> Message[Any] | None:
    try:
        return Message.decode(data)
    except Exception:  # written by another version, or damaged: neither counted nor moved
        return None


def fresh_copy(old: Message[Any] | MessageProxy, queue: str) -> Message[Any]:
    """The dead letter as a new message on ``queue``: same id, actor and arguments, no retry history."""
    options = {k: v for k, v in old.options.items() if k not in _RUN_STATE}
    return Message(
        queue_name=queue,
        actor_name=old.actor_name,
        args=tuple(old.args),
        kwargs=dict(old.kwargs or {}),
        options=options,
        message_id=old.message_id,
        message_timestamp=old.message_timestamp,
    )


def redis_dead_per_mailbox(
    client: redis.Redis, namespace: str = NAMESPACE, queues: tuple[str, ...] = QUEUES
) -> dict[int, int]:
    """Dead letters per mailbox id, over every dead letter of ``queues`` (those about no mailbox are left out)."""
    counts: dict[int, int] = {}
    for queue in queues:
        for _, data in client.hscan_iter(f"{namespace}:{queue}.XQ.msgs", count=_BATCH):
            message = _decode(data)
            mailbox_id = mailbox_of(message) if message is not None else None
            if mailbox_id is not None:
                counts[mailbox_id] = counts.get(mailbox_id, 0) + 1
    return counts


def drop_dead_of_mailbox(
    client: redis.Redis, mailbox_id: int, namespace: str = NAMESPACE, queues: tuple[str, ...] = QUEUES
) -> int:
    """Delete the dead letters about ``mailbox_id`` (a mailbox that was removed: they could only do nothing, and
    they would stay counted for 7 days). Returns how many were dropped."""
    dropped = 0
    for queue in queues:
        key = f"{namespace}:{queue}.XQ"
        for dead_id, data in list(client.hscan_iter(f"{key}.msgs", count=_BATCH)):
            message = _decode(data)
            if message is not None and mailbox_of(message) == mailbox_id:
                pipe = client.pipeline(transaction=True)
                pipe.zrem(key, dead_id)
                pipe.hdel(f"{key}.msgs", dead_id)
                dropped += int(pipe.execute()[1])
    return dropped


def _wanted(message: Message[Any] | MessageProxy | None, mailbox_id: int | None) -> bool:
    return message is not None and (mailbox_id is None or mailbox_of(message) == mailbox_id)


def _requeue_redis(broker: RedisBroker, queues: tuple[str, ...], mailbox_id: int | None) -> int:
    client: redis.Redis = broker.client
    move = client.register_script(_REQUEUE_LUA)
    count = 0
    for queue in queues:
        base = f"{broker.namespace}:{queue}"
        keys = [f"{base}.XQ", f"{base}.XQ.msgs", base, f"{base}.msgs"]
        ids: list[bytes] = list(client.zrange(keys[0], 0, -1))  # type: ignore[arg-type]
        for start in range(0, len(ids), _BATCH):
            batch = ids[start : start + _BATCH]
            blobs: list[bytes | None] = client.hmget(keys[1], batch)  # type: ignore[assignment]
            for dead_id, data in zip(batch, blobs, strict=True):
                if data is None:  # an id without its message: nothing to requeue
                    if mailbox_id is None:
                        client.zrem(keys[0], dead_id)
                    continue
                old = _decode(data)
                if old is None or not _wanted(old, mailbox_id):
                    continue
                count += _move_one(broker, move, keys, dead_id, fresh_copy(old, queue))
    return count


def _move_one(broker: RedisBroker, move: Any, keys: list[str], dead_id: bytes, message: Message[Any]) -> int:
    """Requeue one dead letter as ``RedisBroker.enqueue`` would (a new Redis id, the enqueue hooks); 0 if another
    requeue took it first."""
    message = message.copy(options={"redis_message_id": str(uuid4())})
    broker.emit_before("enqueue", message, None)
    moved = int(move(keys=keys, args=[dead_id, message.options["redis_message_id"], message.encode()]))
    if moved:
        broker.emit_after("enqueue", message, None)
    return moved


def _requeue_stub(broker: StubBroker, queues: tuple[str, ...], mailbox_id: int | None) -> int:
    count = 0
    for queue in queues:
        letters = broker.dead_letters_by_queue.get(queue) or []  # .get: a defaultdict, do not add queues
        for proxy in list(letters):
            if _wanted(proxy, mailbox_id):
                broker.enqueue(fresh_copy(proxy, queue))
                letters.remove(proxy)
                count += 1
    return count


def requeue_dead(runtime: Runtime, queues: tuple[str, ...] = QUEUES, mailbox_id: int | None = None) -> int:
    """Put the dead-lettered messages of ``queues`` back on their queues with a fresh retry budget; with
    ``mailbox_id``, only those about that mailbox (``mailbox_of``). Returns how many were requeued.

    Works on the Redis broker (dead letters in ``<ns>:<queue>.XQ``) and on the embedded ``StubBroker`` (its
    ``dead_letters_by_queue``, which only the process that ran the work can see).
    """
    broker = runtime.broker
    if isinstance(broker, RedisBroker):
        return _requeue_redis(broker, queues, mailbox_id)
    if isinstance(broker, StubBroker):
        return _requeue_stub(broker, queues, mailbox_id)
    raise ValueError(f"cannot requeue the dead letters of a {type(broker).__name__}")

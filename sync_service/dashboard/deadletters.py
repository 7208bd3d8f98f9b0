"""Read (never change) the dead-lettered messages in Redis, to show which mailbox and why.

Key layout as in ``workers/queues.py``: ``<ns>:<queue>.XQ`` (sorted set, score = time of death in ms) and
``<ns>:<queue>.XQ.msgs`` (id → encoded message). Which mailbox a message is about is
``workers.queues.mailbox_of``; the full per-mailbox counts are ``workers.queues.redis_dead_per_mailbox``;
requeueing is ``workers.queues.requeue_dead``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from dramatiq import Message

from workers import QUEUES
from workers.broker import NAMESPACE
from workers.queues import mailbox_of


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    actor: str
    mailbox_id: int | None
    died_at: datetime | None
    error: str  # the last line of the traceback the retry middleware kept, if any


def _last_line(traceback: object) -> str:
    lines = [line for line in str(traceback or "").strip().splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else "gave up after its retries"


def _decode(queue: str, data: bytes, score: float | None) -> DeadLetter:
    try:
        message: Message[Any] = Message.decode(data)
    except Exception:  # a message this version cannot read: still worth counting
        return DeadLetter(queue, "?", None, None, "cannot decode the message")
    mailbox_id = mailbox_of(message)
    died = datetime.fromtimestamp(score / 1000, UTC) if score else None
    return DeadLetter(queue, message.actor_name, mailbox_id, died, _last_line(message.options.get("traceback")))


def read_dead_letters(client: redis.Redis, limit: int = 50) -> list[DeadLetter]:
    """The most recent ``limit`` dead letters of every queue, newest first."""
    found: list[DeadLetter] = []
    for queue in QUEUES:
        key = f"{NAMESPACE}:{queue}.XQ"
        entries: list[tuple[bytes, float]] = client.zrevrange(key, 0, limit - 1, withscores=True)  # type: ignore[assignment]
        if not entries:
            continue
        blobs: list[bytes | None] = client.hmget(f"{key}.msgs", [e[0] for e in entries])  # type: ignore[assignment]
        found.extend(_decode(queue, blob, score) for (_, score), blob in zip(entries, blobs, strict=True) if blob)
    found.sort(key=lambda d: d.died_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    return found[:limit]

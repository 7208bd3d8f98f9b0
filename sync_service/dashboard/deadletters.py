"""Read (never change) the dead-lettered messages in Redis, to show which mailbox and why.

Key layout as in ``workers/queues.py``: ``<ns>:<queue>.XQ`` (sorted set, score = time of death in ms) and
``<ns>:<queue>.XQ.msgs`` (id → encoded message). Requeueing is ``workers.queues.requeue_dead``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from dramatiq import Message

from workers.actors import QUEUES
from workers.broker import NAMESPACE

_MAILBOX_ACTORS = frozenset({"sync_mailbox", "sync_folder", "process_items"})  # first argument: a mailbox id


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
    first = message.args[0] if message.args else None
    mailbox_id = first if message.actor_name in _MAILBOX_ACTORS and isinstance(first, int) else None
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


def per_mailbox(letters: list[DeadLetter], names: Mapping[int, str]) -> dict[str, int]:
    """Dead letters per mailbox name (those about a mailbox)."""
    counts: dict[str, int] = {}
    for letter in letters:
        if letter.mailbox_id is not None and letter.mailbox_id in names:
            name = names[letter.mailbox_id]
            counts[name] = counts.get(name, 0) + 1
    return counts

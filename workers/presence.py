"""Worker processes register themselves in Redis, so that ``status`` can count the live ones.

Why not dramatiq's own heartbeats: its Redis broker keeps a heartbeat per broker in ``dramatiq:__heartbeats__``,
but ``dramatiq/brokers/redis/dispatch.lua`` writes it for *every* process that calls the script — also for one
that only *sends* messages: the scheduler (one message per due mailbox at every interval, ``complete_due`` every
minute), ``crm-sync watch``, a resync from the CLI. With 100 mailboxes on a 300 s interval the scheduler sends
every 3 s or so, so counting fresh heartbeats would never say "no worker alive", even with every worker dead.

So ``WorkerPresence`` (on the Redis broker only, ``workers.broker.setup_broker``) runs in the processes that
boot a dramatiq ``Worker`` — ``crm-sync worker``'s processes, never the scheduler, ``watch`` or the CLI, which
only send. ``after_worker_boot`` writes ``crm-sync:worker:<host>:<pid>`` (a small JSON record) with a TTL of
``PRESENCE_TTL`` seconds and a daemon thread writes it again every ``BEAT_SECONDS``. A worker that is asked to
stop still finishes the messages it holds (up to dramatiq's shutdown timeout), so it still counts while it does:
``before_worker_shutdown`` adds ``"stopping_since"`` to the record and the beats go on; ``after_worker_shutdown``
(its threads have finished and its unstarted messages are back in Redis) stops the thread and deletes the key.
A killed process's key expires after ``PRESENCE_TTL``. A Redis error
while writing is logged and tried again at the next beat: it never stops the worker. ``workers.liveness``
reads the keys.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from datetime import UTC, datetime
from typing import Any

import redis
from dramatiq import Broker, Worker
from dramatiq.common import q_name
from dramatiq.middleware import Middleware

log = logging.getLogger("workers.presence")

PRESENCE_PREFIX = "crm-sync:worker:"  # + "<hostname>:<pid>"
PRESENCE_TTL = 30.0  # seconds a worker's key outlives its last beat: a killed worker counts that long at most
BEAT_SECONDS = 10.0  # how often a live worker writes its key again (well inside the TTL: two beats may fail)


def presence_key(host: str | None = None, pid: int | None = None) -> str:
    """This process's key (or the one of ``host``/``pid``)."""
    return f"{PRESENCE_PREFIX}{host or socket.gethostname()}:{os.getpid() if pid is None else pid}"


def presence_match() -> str:
    """The SCAN pattern of every worker's key."""
    return f"{PRESENCE_PREFIX}*"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Beat:
    """One worker's key, written now and then every ``interval`` seconds by a daemon thread until ``stop``."""

    def __init__(self, client: redis.Redis, key: str, record: dict[str, Any], ttl: float, interval: float) -> None:
        self.client, self.key, self.record = client, key, record
        self.ttl_ms = max(1, int(ttl * 1000))
        self.interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()  # a write in progress never lands after ``stop`` deleted the key
        self._failing = False
        self.thread = threading.Thread(target=self._run, name=f"crm-sync-presence-{key}", daemon=True)

    def start(self) -> None:
        self.write()
        self.thread.start()

    def write(self) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            try:
                self.client.set(self.key, json.dumps(self.record | {"beat_at": _now()}), px=self.ttl_ms)
            except Exception as error:  # a Redis outage (or anything else) must never end the worker
                level = logging.DEBUG if self._failing else logging.WARNING
                log.log(level, "cannot write the worker's presence %s (tried again in %.0f s): %s",
                        self.key, self.interval, error, exc_info=not isinstance(error, redis.RedisError))  # fmt: skip
                self._failing = True
                return
            if self._failing:
                log.info("the worker's presence %s is written again", self.key)
                self._failing = False

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.write()

    def mark(self, **fields: Any) -> None:
        """Add ``fields`` to the record, written at once and with every later beat."""
        with self._lock:
            self.record = self.record | fields
        self.write()

    def halt(self) -> None:
        """Stop writing, leave the key to expire (what a killed process does)."""
        with self._lock:
            self._stop.set()
        self.thread.join(timeout=5)

    def stop(self) -> None:
        """Stop writing and delete the key (a worker that shuts down cleanly)."""
        self.halt()
        try:
            self.client.delete(self.key)
        except redis.RedisError as error:
            log.warning("cannot delete the worker's presence %s (it expires by itself): %s", self.key, error)


class WorkerPresence(Middleware):
    """Keeps ``crm-sync:worker:<host>:<pid>`` in Redis while this process's dramatiq ``Worker`` runs.

    ``ttl`` / ``interval`` default to ``PRESENCE_TTL`` / ``BEAT_SECONDS`` as they are when the worker boots."""

    def __init__(self, ttl: float | None = None, interval: float | None = None) -> None:
        self.ttl, self.interval = ttl, interval
        self.beats: dict[int, _Beat] = {}  # by id(worker): dramatiq runs one Worker per process

    def after_worker_boot(self, broker: Broker, worker: Worker) -> None:
        client = getattr(broker, "client", None)
        if not isinstance(client, redis.Redis):
            return
        queues = worker.consumer_whitelist or broker.get_declared_queues()
        record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": _now(),
            "threads": worker.worker_threads,
            "queues": sorted({q_name(queue) for queue in queues}),
        }
        ttl = PRESENCE_TTL if self.ttl is None else self.ttl
        interval = BEAT_SECONDS if self.interval is None else self.interval
        beat = _Beat(client, presence_key(), record, ttl, interval)
        self.beats[id(worker)] = beat
        beat.start()

    def before_worker_shutdown(self, broker: Broker, worker: Worker) -> None:
        beat = self.beats.get(id(worker))
        if beat is not None:  # still finishing its messages: it counts until after_worker_shutdown
            beat.mark(stopping_since=_now())

    def after_worker_shutdown(self, broker: Broker, worker: Worker) -> None:
        beat = self.beats.pop(id(worker), None)
        if beat is not None:
            beat.stop()

"""The embedded queue: the same actors on an in-process broker, drained by worker threads of this process.

Used by ``run_once`` (``crm-sync sync --once``, ``crm-sync demo``): no server is needed. Retries and backoff
work as in Redis mode (with shorter defaults, see ``workers/options.py``); ``join`` waits for every message,
delayed retries included. Each message's result, or its last error, is kept for the caller's report.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from types import TracebackType
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name

from sync_service.bootstrap import App
from workers import QUEUES
from workers.broker import setup_broker
from workers.context import Hooks

__all__ = ["EmbeddedQueue", "Hooks"]


class EmbeddedQueue:
    def __init__(self, app: App, hooks: Hooks | None = None) -> None:
        self._outcomes: dict[tuple[str, tuple[object, ...]], object] = {}
        self._mutex = threading.Lock()
        self.runtime = setup_broker(
            app.settings, app=app, hooks=replace(hooks or Hooks(), on_outcome=self._note), embedded=True
        )
        self.worker = dramatiq.Worker(
            self.runtime.broker, worker_threads=self.runtime.options.threads, worker_timeout=20
        )

    def __enter__(self) -> EmbeddedQueue:
        self.worker.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        # Signal every thread first. Each one notices at the end of its current poll (``worker_timeout``).
        # After ``join`` (the caller leaves normally) nothing runs and nothing is prefetched: ``Worker.stop``
        # then does not wait for the idle threads' polls to end — about 20 ms at the end of every
        # ``run_once`` — and they end by themselves within one poll. When the caller leaves on an error, a
        # message may still be in hand: it waits for the threads, which finish that message before they stop.
        for worker in self.worker.workers:
            worker.stop()
        for consumer in self.worker.consumers.values():
            consumer.stop()
        self.worker.stop(timeout=0 if kind is None and self._idle() else 600_000)
        self.runtime.close()

    def _idle(self) -> bool:
        return all(q.unfinished_tasks == 0 for q in self.broker.queues.values()) and self.worker.work_queue.empty()

    def _note(self, actor: str, args: tuple[object, ...], outcome: object) -> None:
        with self._mutex:
            self._outcomes[(actor, args)] = outcome

    @property
    def broker(self) -> StubBroker:
        assert isinstance(self.runtime.broker, StubBroker)
        return self.runtime.broker

    def send(self, actor: str, *args: object) -> None:
        self.runtime.send(actor, *args)

    def join(self, timeout_ms: int | None = None) -> None:
        """Wait until every queue is empty and nothing runs, delayed retries included."""
        while True:
            for queue in QUEUES:
                if queue in self.broker.queues:
                    self.broker.join(queue, timeout=timeout_ms, fail_fast=False)
            if all(q.unfinished_tasks == 0 for q in self.broker.queues.values()):
                return

    def outcome(self, actor: str, *args: object) -> object:
        """What ``actor(*args)`` returned the last time it ran, or the error it last raised; None if it did not."""
        with self._mutex:
            return self._outcomes.get((actor, args))

    def stats(self) -> dict[str, dict[str, int]]:
        """Per queue: ready, in flight, delayed, dead-lettered (what ``status`` shows in Redis mode)."""
        result: dict[str, dict[str, int]] = {}
        for queue in QUEUES:
            ready = self.broker.queues.get(queue)
            delayed = self.broker.queues.get(dq_name(queue))
            waiting = ready.qsize() if ready is not None else 0
            result[queue] = {
                "ready": waiting,
                "in_flight": max(0, (ready.unfinished_tasks if ready is not None else 0) - waiting),
                "delayed": delayed.unfinished_tasks if delayed is not None else 0,
                "dead_lettered": len(self.broker.dead_letters_by_queue.get(queue, [])),
            }
        return result

    def dead_letters(self) -> list[Any]:
        return list(self.broker.dead_letters)

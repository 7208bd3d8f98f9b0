"""The dramatiq actors: thin wrappers, ids in, one task call each (``workers/tasks.py``).

Why a function that declares them instead of module-level ``@dramatiq.actor``: a decorated function binds to
the *global* broker at import time, so whichever module imports first decides the broker (dramatiq's
import-order trap), and a process could never hold an embedded queue and a Redis one side by side (tests, or
``sync --once`` next to Redis workers). Here the broker is created in one place (``workers.broker``) and
passed in explicitly; importing this module does nothing.

| actor           | queue         | arguments              | what it does                                   |
|-----------------|---------------|------------------------|------------------------------------------------|
| ``sync_mailbox``  | ``sync``        | mailbox id             | every folder: list changes, fetch, store + cursor |
| ``sync_folder``   | ``sync``        | mailbox id, folder     | the same for one folder                        |
| ``process_items`` | ``process``     | mailbox id or none     | pending raw items → items, matches, activities |
| ``rematch``       | ``process``     | —                      | match earlier items again after CRM changes    |
| ``rematch_replies`` | ``process``   | —                      | replies stored before their message: again |
| ``complete_due``  | ``maintenance`` | —                      | planned meetings/calls whose end passed → completed |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq import Broker, Message

from workers import tasks
from workers.context import WorkerContext

_HOURS = 3_600_000


@dataclass(frozen=True)
class Actors:
    by_name: dict[str, dramatiq.Actor[Any, Any]]

    def send(self, name: str, *args: object) -> Message[Any]:
        return self.by_name[name].send(*args)


def _record(ctx: WorkerContext, name: str, args: tuple[object, ...], work: Callable[[], object]) -> object:
    """Run ``work``; hand its result (or error) to the in-process hooks, and return it. Actors return nothing
    over the wire."""
    note = ctx.hooks.on_outcome
    try:
        outcome = work()
    except Exception as error:
        if note is not None:
            note(name, args, getattr(error, "result", error))
        raise
    if note is not None:
        note(name, args, outcome)
    return outcome


def declare_actors(broker: Broker, ctx: WorkerContext) -> Actors:
    """Declare the actors on ``broker``; their tasks run with ``ctx``."""

    def sync_mailbox(mailbox_id: int) -> None:
        _record(ctx, "sync_mailbox", (mailbox_id,), lambda: tasks.sync_mailbox(ctx, mailbox_id))

    def sync_folder(mailbox_id: int, folder: str) -> None:
        _record(ctx, "sync_folder", (mailbox_id, folder), lambda: tasks.sync_mailbox(ctx, mailbox_id, [folder]))

    def process_items(mailbox_id: int | None = None) -> None:
        args = () if mailbox_id is None else (mailbox_id,)
        outcome = _record(ctx, "process_items", args, lambda: tasks.process_items(ctx, mailbox_id))
        if mailbox_id is not None and getattr(outcome, "more", False):  # its time slice ended: the rest, later
            tasks.continue_processing(ctx, mailbox_id, lambda: declared["process_items"].send(mailbox_id))
        if getattr(outcome, "contacts_from_cards", 0) or getattr(outcome, "leads_converted", 0):
            declared["rematch"].send()  # an address book changed contacts, a lead became a sale (SPEC §3.7)
        elif getattr(outcome, "replies", 0):  # a message that earlier replies waited for (``pipeline.awaited``)
            declared["rematch_replies"].send()

    def rematch() -> None:
        _record(ctx, "rematch", (), lambda: tasks.rematch(ctx))

    def rematch_replies() -> None:
        _record(ctx, "rematch_replies", (), lambda: tasks.rematch_replies(ctx))

    def complete_due() -> None:
        converted: set[int] = set()
        _record(ctx, "complete_due", (), lambda: tasks.complete_due(ctx, converted))
        if converted:  # a completed meeting or call made a lead an opportunity: its earlier items again
            declared["rematch"].send()

    specs: list[tuple[Callable[..., None], str, int]] = [
        (sync_mailbox, "sync", 12 * _HOURS),
        (sync_folder, "sync", 12 * _HOURS),
        (process_items, "process", 12 * _HOURS),
        (rematch, "process", 12 * _HOURS),
        (rematch_replies, "process", 12 * _HOURS),
        (complete_due, "maintenance", _HOURS),
    ]
    declared = {
        fn.__name__: dramatiq.actor(broker=broker, actor_name=fn.__name__, queue_name=queue, time_limit=limit)(fn)
        for fn, queue, limit in specs
    }
    return Actors(declared)

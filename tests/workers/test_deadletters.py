"""Requeueing dead letters, all of them or only those about one mailbox: on dramatiq's StubBroker (the embedded
queue) and on its RedisBroker against a real redis-server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from crm_store.models import Mailbox
from sync_service.bootstrap import App
from tests.conftest import make_settings
from tests.support.flaky import flaky_url
from tests.workers.conftest import generated_mail, prepare
from workers.broker import NAMESPACE, Runtime, setup_broker
from workers.embedded import EmbeddedQueue
from workers.queues import mailbox_of, redis_dead_per_mailbox, redis_queue_stats, requeue_dead

# (actor, args, queue): messages about mailbox 1, about mailbox 2, and about no mailbox
MESSAGES: list[tuple[str, tuple[Any, ...], str]] = [
    ("sync_mailbox", (1,), "sync"),
    ("sync_folder", (1, "INBOX"), "sync"),
    ("process_items", (1,), "process"),
    ("sync_mailbox", (2,), "sync"),
    ("process_items", (), "process"),
    ("rematch", (), "process"),
    ("complete_due", (), "maintenance"),
]
RUN_STATE = {"retries": 10, "traceback": "Traceback …\nTransientError: server busy", "requeue_timestamp": 1}


def _message(actor: str, args: tuple[Any, ...], queue: str) -> Message[Any]:
    """A message as the retry middleware leaves it when it gives up: with its retry history."""
    return Message(queue_name=queue, actor_name=actor, args=args, kwargs={}, options=dict(RUN_STATE))


def _dead_letter_stub(broker: StubBroker, message: Message[Any]) -> None:
    broker.enqueue(message)
    consumer = broker.consume(message.queue_name, timeout=1000)
    fetched = next(consumer)
    assert fetched is not None
    consumer.nack(fetched)


def _dead_letter_redis(broker: RedisBroker, message: Message[Any]) -> None:
    broker.enqueue(message)
    fetched = broker.do_fetch(message.queue_name, 1)
    broker.do_nack(message.queue_name, Message.decode(fetched[0]).options["redis_message_id"])


def _ready_stub(broker: StubBroker, queue: str) -> list[Message[Any]]:
    return [Message.decode(data) for data in list(broker.queues[queue].queue)]


def _ready_redis(client: redis.Redis, queue: str) -> list[Message[Any]]:
    ids = client.lrange(f"{NAMESPACE}:{queue}", 0, -1)
    return [Message.decode(client.hget(f"{NAMESPACE}:{queue}.msgs", i)) for i in ids]  # type: ignore[arg-type,union-attr]


def _calls(messages: list[Message[Any]]) -> list[tuple[str, tuple[Any, ...]]]:
    return sorted((m.actor_name, tuple(m.args)) for m in messages)


def test_the_mailbox_of_a_message() -> None:
    found = {(actor, args): mailbox_of(_message(actor, args, queue)) for actor, args, queue in MESSAGES}
    assert found == {
        ("sync_mailbox", (1,)): 1, ("sync_folder", (1, "INBOX")): 1, ("process_items", (1,)): 1,
        ("sync_mailbox", (2,)): 2, ("process_items", ()): None, ("rematch", ()): None, ("complete_due", ()): None,
    }  # fmt: skip
    keyword = Message(queue_name="process", actor_name="process_items", args=(), kwargs={"mailbox_id": 7}, options={})
    assert mailbox_of(keyword) == 7
    assert mailbox_of(_message("sync_mailbox", (True,), "sync")) is None  # not an id


@pytest.fixture
def stub_runtime(tmp_path: Path) -> Iterator[Runtime]:
    built = setup_broker(make_settings(f"sqlite:///{tmp_path / 'unused.db'}", tmp_path), embedded=True)
    yield built
    built.close()


def test_stub_broker_requeues_only_the_mailboxs_dead_letters(stub_runtime: Runtime) -> None:
    broker = stub_runtime.broker
    assert isinstance(broker, StubBroker)
    for actor, args, queue in MESSAGES:
        _dead_letter_stub(broker, _message(actor, args, queue))
    assert len(broker.dead_letters) == 7

    assert requeue_dead(stub_runtime, mailbox_id=1) == 3
    left = sorted((m.actor_name, tuple(m.args)) for m in broker.dead_letters)
    assert left == [("complete_due", ()), ("process_items", ()), ("rematch", ()), ("sync_mailbox", (2,))]
    ready = _ready_stub(broker, "sync") + _ready_stub(broker, "process")
    assert _calls(ready) == [("process_items", (1,)), ("sync_folder", (1, "INBOX")), ("sync_mailbox", (1,))]
    assert all(not set(RUN_STATE) & set(m.options) for m in ready)  # a fresh retry budget
    assert requeue_dead(stub_runtime, mailbox_id=1) == 0  # nothing left of mailbox 1

    assert requeue_dead(stub_runtime, ("maintenance",)) == 1
    assert requeue_dead(stub_runtime) == 3
    assert broker.dead_letters == []
    assert sum(q.qsize() for q in broker.queues.values()) == 7


def test_a_requeued_embedded_dead_letter_runs_again(app: App, flaky: None, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CRM_MAX_RETRIES", "0")
    counter = tmp_path / "calls"
    source = generated_mail(tmp_path / "mail", 2)
    prepare(app, {"alice": flaky_url(source, throttle=100, retry_after=0.01, counter=counter),
                  "bob": flaky_url(source, throttle=100, retry_after=0.01, counter=tmp_path / "bob")})  # fmt: skip
    with app.sessions() as session:
        ids = dict(session.execute(select(Mailbox.name, Mailbox.id)).all())
    with EmbeddedQueue(app) as queue:
        for mailbox_id in ids.values():
            queue.send("sync_mailbox", mailbox_id)
        queue.join()
        assert int(counter.read_text()) == 1 and queue.stats()["sync"]["dead_lettered"] == 2
        assert requeue_dead(queue.runtime, mailbox_id=ids["alice"]) == 1
        queue.join()
        assert int(counter.read_text()) == 2  # alice's sync ran again (and was refused again)
        assert int((tmp_path / "bob").read_text()) == 1  # bob's stayed dead
        assert [mailbox_of(m) for m in queue.dead_letters()] == [ids["bob"], ids["alice"]]


@pytest.fixture
def redis_runtime(redis_url: str, tmp_path: Path) -> Iterator[Runtime]:
    settings = make_settings(f"sqlite:///{tmp_path / 'unused.db'}", tmp_path, broker_url=redis_url)
    built = setup_broker(settings)
    yield built
    built.close()


def test_redis_broker_requeues_only_the_mailboxs_dead_letters(redis_runtime: Runtime) -> None:
    broker, client = redis_runtime.broker, redis_runtime.redis
    assert isinstance(broker, RedisBroker) and client is not None
    for actor, args, queue in MESSAGES:
        _dead_letter_redis(broker, _message(actor, args, queue))
    client.hset(f"{NAMESPACE}:sync.XQ.msgs", "garbled", b"not a message")  # from another version, say
    client.zadd(f"{NAMESPACE}:sync.XQ", {"garbled": 1})
    assert redis_dead_per_mailbox(client) == {1: 3, 2: 1}
    stats = redis_queue_stats(client)
    assert [stats[q]["dead_lettered"] for q in ("sync", "process", "maintenance")] == [4, 3, 1]

    assert requeue_dead(redis_runtime, mailbox_id=1) == 3
    stats = redis_queue_stats(client)
    assert {q: (n["ready"], n["dead_lettered"]) for q, n in stats.items()} == {
        "sync": (2, 2), "process": (1, 2), "maintenance": (0, 1)
    }  # fmt: skip
    ready = _ready_redis(client, "sync") + _ready_redis(client, "process")
    assert _calls(ready) == [("process_items", (1,)), ("sync_folder", (1, "INBOX")), ("sync_mailbox", (1,))]
    assert all(not set(RUN_STATE) & set(m.options) for m in ready)  # a fresh retry budget
    assert len({m.options["redis_message_id"] for m in ready}) == 3  # new Redis ids, as RedisBroker.enqueue gives
    assert redis_dead_per_mailbox(client) == {2: 1}

    assert requeue_dead(redis_runtime) == 4  # the rest; the garbled one is neither run nor thrown away
    assert client.zrange(f"{NAMESPACE}:sync.XQ", 0, -1) == [b"garbled"]
    assert sum(n["ready"] for n in redis_queue_stats(client).values()) == 7


def test_concurrent_redis_requeues_move_each_dead_letter_once(redis_runtime: Runtime, redis_url: str) -> None:
    broker, client = redis_runtime.broker, redis_runtime.redis
    assert isinstance(broker, RedisBroker) and client is not None
    for n in range(150):
        _dead_letter_redis(broker, _message("sync_mailbox", (1 + n % 2,), "sync"))
    counts: list[int] = []
    runtimes = [setup_broker(replace(redis_runtime.context.settings, broker_url=redis_url)) for _ in range(4)]
    # Each requeue reads the dead letters first, then moves them: all four see every one of mailbox 1.
    threads = [threading.Thread(target=lambda r=r: counts.append(requeue_dead(r, mailbox_id=1))) for r in runtimes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for built in runtimes:
        built.close()
    assert sum(counts) == 75
    assert redis_queue_stats(client)["sync"] == {"ready": 75, "in_flight": 0, "delayed": 0, "dead_lettered": 75}
    assert redis_dead_per_mailbox(client) == {2: 75}

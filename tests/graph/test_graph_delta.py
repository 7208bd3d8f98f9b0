"""Mail folders through delta queries: paging with nextLink, resuming from a stored page cursor, @removed,
410 resync, throttling, MIME via $value with bounded concurrency, immutable ids."""

from __future__ import annotations

import json

import pytest

from sync_service.connectors.graph import MAX_CONCURRENCY
from sync_service.errors import TransientSourceError
from tests.graph.conftest import drain
from tests.support.builders import REP, message
from tests.support.graph_server import FakeGraphServer


def _mail(n: int, **kwargs: object) -> bytes:
    return message(f"delta-{n}@acme.example", "wile@acme.example", [REP], f"Rockets {n}", **kwargs)  # type: ignore[arg-type]


def _link(cursor: str) -> str:
    return str(json.loads(cursor)["link"])


def test_initial_round_pages_with_next_links_then_a_delta_link(graph: FakeGraphServer, alice, connect) -> None:
    ids = [alice.deliver(_mail(n)) for n in range(7)]
    pages, items = drain(connect(), "inbox", limit=3)
    assert [len(p.upserts) for p in pages] == [3, 3, 1]
    assert [p.more for p in pages] == [True, True, False]
    assert [_link(p.next_cursor).split("?")[1].split("=")[0] for p in pages] == ["$skiptoken", "$skiptoken",
                                                                                 "$deltatoken"]  # fmt: skip
    assert sorted(r.ref.external_id for r in items) == sorted(ids)
    assert all(p.full_resync is False and p.deletes == () for p in pages)
    requests = graph.graph_requests("/messages/delta")
    assert all("odata.maxpagesize=3" in r.prefer for r in requests)
    assert "changeKey" in requests[0].query  # $select on the initial request only; the links carry it
    nothing_new, _ = drain(connect(), "inbox", pages[-1].next_cursor)
    assert nothing_new[0].upserts == () and nothing_new[0].more is False


def test_an_interrupted_round_resumes_from_the_stored_page_cursor(graph: FakeGraphServer, alice, connect) -> None:
    ids = [alice.deliver(_mail(n)) for n in range(5)]
    first = connect().list_changes("inbox", None, 2)  # stored with its items; then the worker dies
    again = connect().list_changes("inbox", first.next_cursor, 2)
    replay = connect().list_changes("inbox", first.next_cursor, 2)  # a crash before that page was stored
    assert again.upserts == replay.upserts  # the same page cursor gives the same page
    rest, _ = drain(connect(), "inbox", again.next_cursor, 2)
    seen = [r.external_id for page in (first, again, *rest) for r in page.upserts]
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))


def test_removed_entries_become_deletes_and_moves_keep_immutable_ids(graph: FakeGraphServer, alice, connect) -> None:
    gone, moved, read, kept = (alice.deliver(_mail(n)) for n in range(4))
    inbox, _ = drain(connect(), "inbox")
    sent, _ = drain(connect(), "sentitems")
    alice.delete(gone)
    alice.move(moved, "inbox", "sentitems")
    alice.mark_read(read)
    inbox2, _ = drain(connect(), "inbox", inbox[-1].next_cursor)
    _, items = drain(connect(), "sentitems", sent[-1].next_cursor)
    assert sorted(inbox2[0].deletes) == sorted([gone, moved])
    assert [r.external_id for r in inbox2[0].upserts] == [read]  # a flag change is a change (same bytes)
    assert [r.ref.external_id for r in items] == [moved] and items[0].data == _mail(1)
    assert kept not in inbox2[0].deletes


def test_expired_sync_state_restarts_the_round_as_a_full_resync(graph: FakeGraphServer, alice, connect) -> None:
    ids = [alice.deliver(_mail(n)) for n in range(3)]
    pages, _ = drain(connect(), "inbox", limit=2)
    graph.expire_sync_state()  # 410 Gone, syncStateNotFound
    resync, items = drain(connect(), "inbox", pages[-1].next_cursor, 2)
    assert resync[0].full_resync is True and all(not p.full_resync for p in resync[1:])
    assert sorted(r.ref.external_id for r in items) == sorted(ids)
    mid_round = connect().list_changes("inbox", None, 2)
    graph.expire_sync_state()  # a skip token can expire too
    assert connect().list_changes("inbox", mid_round.next_cursor, 2).full_resync is True


def test_a_cursor_for_another_host_is_never_followed(graph: FakeGraphServer, alice, connect) -> None:
    alice.deliver(_mail(1))
    foreign = json.dumps({"link": "https://attacker.example/v1.0/users/x/messages/delta?$deltatoken=1"})
    page = connect().list_changes("inbox", foreign)
    assert page.full_resync is True and len(page.upserts) == 1
    assert all("attacker" not in r.path for r in graph.graph_requests())


def test_throttling_raises_transient_with_the_servers_delay(graph: FakeGraphServer, alice, connect) -> None:
    alice.deliver(_mail(1))
    graph.fail("/messages/delta", 429, retry_after="30")
    with pytest.raises(TransientSourceError) as listing:
        connect().list_changes("inbox", None)
    assert listing.value.retry_after == 30.0 and "TooManyRequests" in str(listing.value)
    page = connect().list_changes("inbox", None)
    graph.fail("/$value", 503, retry_after="12.5")
    with pytest.raises(TransientSourceError) as fetching:
        list(connect().fetch("inbox", page.upserts))
    assert fetching.value.retry_after == 12.5


def test_a_short_retry_after_is_waited_out_in_place(graph: FakeGraphServer, alice, connect) -> None:
    alice.deliver(_mail(1))
    graph.fail("/messages/delta", 429, retry_after="0", times=2)
    graph.fail("/$value", 504)  # no Retry-After: the workers' backoff decides
    connector = connect()
    page = connector.list_changes("inbox", None)
    assert len(page.upserts) == 1 and len(graph.graph_requests("/messages/delta")) == 3
    with pytest.raises(TransientSourceError) as error:
        list(connector.fetch("inbox", page.upserts))
    assert error.value.retry_after is None


def test_value_gives_the_exact_mime_four_at_a_time(graph: FakeGraphServer, alice, connect) -> None:
    mails = [_mail(n, attachment=("quote.pdf", b"%PDF-1.4 x", "application/pdf")) for n in range(9)]
    raw = {alice.deliver(mime): mime for mime in mails}
    graph.hold_parallel = MAX_CONCURRENCY  # each $value answer waits until four are in flight
    connector = connect()
    page = connector.list_changes("inbox", None)
    items = list(connector.fetch("inbox", page.upserts))
    assert {r.ref.external_id: r.data for r in items} == raw
    assert graph.activity.peak[REP] == MAX_CONCURRENCY


def test_a_message_deleted_between_listing_and_fetching_is_skipped(graph: FakeGraphServer, alice, connect) -> None:
    first, second = alice.deliver(_mail(1)), alice.deliver(_mail(2))
    connector = connect()
    page = connector.list_changes("inbox", None)
    alice.delete(first)
    assert [r.ref.external_id for r in connector.fetch("inbox", page.upserts)] == [second]


def test_unknown_mail_folder_is_permanent(connect, alice) -> None:
    from sync_service.errors import PermanentSourceError

    with pytest.raises(PermanentSourceError, match="'archive' was not found"):
        connect(folders="inbox,archive").list_changes("archive", None)

"""The decoded snapshots a process keeps between listings (``snapshot_cache``), and the Maildir's use of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync_service.connectors import maildir
from sync_service.connectors.maildir import MaildirConnector
from sync_service.connectors.snapshot_cache import SnapshotCache


def _snapshot(n: int, tag: str = "") -> dict[str, str]:
    return {f"{tag}{i}": str(i) for i in range(n)}


def test_a_snapshot_is_decoded_once_and_then_shared() -> None:
    cache = SnapshotCache(min_entries=2)
    calls: list[str] = []

    def decode(text: str) -> dict[str, str]:
        calls.append(text)
        return _snapshot(3, text)

    first = cache.get("a", decode)
    assert cache.get("a", decode) is first and calls == ["a"]
    assert cache.get("b", decode) == _snapshot(3, "b") and calls == ["a", "b"]


def test_small_and_huge_snapshots_are_not_kept() -> None:
    cache = SnapshotCache(min_entries=5, max_entries=10)
    cache.put("small", _snapshot(4))
    cache.put("huge", _snapshot(11))
    assert len(cache) == 0
    cache.put("fits", _snapshot(5))
    assert len(cache) == 1


def test_the_least_recently_used_go_first() -> None:
    cache = SnapshotCache(max_snapshots=2, max_entries=25, min_entries=1)
    cache.put("a", _snapshot(10))
    cache.put("b", _snapshot(10))
    assert cache.get("a", lambda text: pytest.fail("a is kept")) == _snapshot(10)  # a: now the most recent
    cache.put("c", _snapshot(10))  # three snapshots: b, the least recently used, goes
    assert cache.get("b", lambda text: {}) == {} and len(cache) == 2  # decoded again (and too small to keep)
    cache.put("d", _snapshot(20))  # 10 + 10 + 20 entries > 25: the oldest go until it fits
    assert len(cache) == 1 and cache.get("d", lambda text: pytest.fail("d is kept")) == _snapshot(20)


def test_a_maildir_relisting_in_the_same_process_does_not_decode_its_base_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "mail"
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True)
    for i in range(1200):
        (root / "cur" / f"1700000000.M{i}P1.host:2,S").write_bytes(b"Subject: s\n\nbody\n")
    monkeypatch.setattr(maildir, "BASES", SnapshotCache())
    decoded: list[int] = []
    real = maildir._snapshot
    monkeypatch.setattr(maildir, "_snapshot", lambda text: decoded.append(1) or real(text))
    url = f"maildir://{root}"
    connector, cursor = MaildirConnector(url), None
    while True:  # one pass of one connector: its last fold writes the base and keeps it, nothing is decoded
        page = connector.list_changes(".", cursor)
        cursor = page.next_cursor
        if not page.more:
            break
    assert len(maildir.BASES) == 1 and decoded == []
    (root / "cur" / "1700000001.M9999P1.host:2,S").write_bytes(b"Subject: new\n\nbody\n")
    page = MaildirConnector(url).list_changes(".", cursor)
    assert [r.external_id for r in page.upserts] == ["1700000001.M9999P1.host"] and page.deletes == ()
    assert decoded == []  # the base came from the cache
    monkeypatch.setattr(maildir, "BASES", SnapshotCache())  # a new process: the same page, decoded
    again = MaildirConnector(url).list_changes(".", cursor)
    assert (again.upserts, again.deletes) == (page.upserts, page.deletes) and decoded == [1]

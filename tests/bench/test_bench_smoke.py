"""Smoke test of the benchmarks (bench/): the generator and the whole benchmark code path on a tiny corpus.

Nothing here asserts a timing — only that every row is produced and the corpus is what it claims to be.
"""

from __future__ import annotations

import json
from email.parser import BytesParser
from email.policy import compat32
from pathlib import Path

import pytest

from bench import bench_ingest
from bench.corpus import MAILDIR, CorpusSpec, append_messages, generate, message_files

SMALL = CorpusSpec(messages=200, accounts=30, leads=10)


def test_the_generator_is_deterministic_and_realistic(tmp_path: Path) -> None:
    first = generate(tmp_path / "a", SMALL)
    second = generate(tmp_path / "b", SMALL)
    files_a, files_b = message_files(tmp_path / "a" / MAILDIR), message_files(tmp_path / "b" / MAILDIR)
    assert [p.name for p in files_a] == [p.name for p in files_b]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(files_a, files_b, strict=True))
    assert first == second
    assert first["messages"] == len(files_a) == 200
    kinds = first["kinds"]
    assert isinstance(kinds, dict)
    assert kinds["crm"] > 80 and {"newsletter", "internal", "private", "invitation"} <= set(kinds)
    assert 20 <= int(str(first["with_attachments"])) <= 70  # about a fifth
    assert (tmp_path / "a" / "maildir" / ".Sent" / "cur").is_dir()
    for name in ("accounts", "contacts", "leads", "opportunities"):
        assert (tmp_path / "a" / "crm" / f"{name}.csv").stat().st_size > 0
    parsed = [BytesParser(policy=compat32).parsebytes(p.read_bytes()) for p in files_a[:50]]
    assert all(m["Message-ID"] for m in parsed if m["From"])
    assert any(m["In-Reply-To"] for m in parsed)


def test_appended_messages_are_new_files(tmp_path: Path) -> None:
    generate(tmp_path, SMALL)
    before = {p.name for p in message_files(tmp_path / MAILDIR)}
    added = append_messages(tmp_path / MAILDIR, SMALL, 10)
    assert len(added) == 10
    assert not before & {p.name for p in added}
    assert len(message_files(tmp_path / MAILDIR)) == 210


def test_the_benchmark_prints_every_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "result.json"
    code = bench_ingest.main(
        [
            "--messages",
            "200",
            "--accounts",
            "30",
            "--leads",
            "10",
            "--cache",
            str(tmp_path / "cache"),
            "--workdir",
            str(tmp_path / "work" / "not-there-yet"),  # created
            "--json",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    for row in (
        "parse-only: stdlib compat32 full parse",
        "parse-only: stdlib headers only",
        "ingest SQLite: run_once",
        "re-sync SQLite: +10 new messages",
        "ingest PostgreSQL: run_once",
        "peak RSS: SQLite ingest of 20",
        "peak RSS: SQLite ingest of 200",
    ):
        assert row in printed, f"missing row {row!r} in:\n{printed}"
    results = json.loads(out.read_text())
    assert results["sqlite"]["messages"] == 200
    assert results["sqlite"]["failed"] == [] and results["sqlite"]["resync_failed"] == []
    assert results["sqlite"]["stats"]["logged"] > 100
    assert results["sqlite"]["resync_logged"] == 10
    rounds = results["sqlite"]["resync_rounds_seconds"]  # three re-syncs; the median is the one reported
    assert len(rounds) == 3 and results["sqlite"]["resync_seconds"] == sorted(rounds)[1]
    assert "re-sync SQLite: +10 new messages, median of 3" in printed and "re-syncs, in order (s): SQLite" in printed
    assert "postgresql" in results or "skipped" in printed  # no PostgreSQL binaries: a row with a note
    assert not list(tmp_path.glob("crm-sync-bench-*")), "the work folder is removed"


def test_the_index_benchmark_keeps_the_index_until_a_change(capsys: pytest.CaptureFixture[str]) -> None:
    """bench/bench_index.py on a small CRM (SQLite): every round after the first keeps the index, every change
    rebuilds it (``measure`` checks the cache's counts), and a row of figures is printed."""
    from bench import bench_index

    assert bench_index.main(["--contacts", "300", "--rounds", "2", "--sqlite-only"]) == 0
    printed = capsys.readouterr().out
    assert "SQLite" in printed and "300" in printed

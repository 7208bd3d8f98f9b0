"""Fetching in a forked process while ``run_once`` processes what it stores (``workers.fetch_ahead``), and the
processing run that follows a fetch page by page (``pipeline.follow``). SQLite and PostgreSQL.

Whatever the fetch process does — run, die half-way, or not start at all — the database ends as a sync that
fetched everything first and processed it afterwards leaves it (``snapshot``, by natural keys)."""

from __future__ import annotations

import logging
import mailbox
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_store.db import transaction
from crm_store.migrate import upgrade
from crm_store.models import RawItem
from crm_store.seed import seed_defaults
from sync_service.bootstrap import App, bootstrap
from sync_service.pipeline.follow import FetchProgress
from sync_service.pipeline.process import process_pending
from sync_service.pipeline.runner import run_once, selected_mailboxes, sync_mailbox
from tests.conftest import make_settings
from tests.support.builders import REP, message
from tests.workers.conftest import assert_same, generated_mail, new_postgres_database, prepare, snapshot, wait_for
from workers import fetch_ahead
from workers.fetch_ahead import FetchAhead, can_fork

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fetching ahead forks only on Linux"),
    pytest.mark.lone_thread,  # run first (tests/conftest.py): the fork needs a process with no other thread
]

BATCH = 10  # items per page and per processing batch: 75 messages make 8 pages


@pytest.fixture
def prepared(app: App, sources: dict[str, str]) -> App:
    """The CRM and the two mailboxes, with small pages and batches."""
    app.settings = replace(app.settings, batch_size=BATCH)
    prepare(app, sources)
    return app


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, str]:
    return {
        "alice": f"maildir://{generated_mail(tmp_path / 'alice', 75)}",
        "bob": f"maildir://{generated_mail(tmp_path / 'bob', 40, shared_from=50)}",  # 25 emails both reps have
    }


@pytest.fixture
def clean(request: pytest.FixtureRequest, app: App, tmp_path: Path, sources: dict[str, str]) -> dict[str, Any]:
    """The database a run that fetches everything here, then processes it, leaves."""
    url = app.settings.database_url
    if url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'clean.db'}"
    else:
        url = new_postgres_database(request.getfixturevalue("postgres_server"))
    other = bootstrap(make_settings(url, tmp_path / "clean-data", batch_size=BATCH))
    try:
        upgrade(other.engine)
        with transaction(other.sessions) as session:
            seed_defaults(session)
        prepare(other, sources)
        report = run_once(other, fetch_process=False)
        assert not report.failed, report.failed
        return snapshot(other)
    finally:
        other.close()


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[FetchAhead | None]:
    """What each ``FetchAhead.start`` returned (None: it did not fork)."""
    started: list[FetchAhead | None] = []
    real = FetchAhead.start.__func__  # type: ignore[attr-defined]

    def start(cls: type[FetchAhead], *args: Any, **kwargs: Any) -> FetchAhead | None:
        ahead = real(cls, *args, **kwargs)
        started.append(ahead)
        return ahead

    monkeypatch.setattr(FetchAhead, "start", classmethod(start))
    # The embedded queue of an earlier run leaves without waiting for its idle threads, which end within a poll.
    wait_for(
        can_fork, 5, "no other thread in this process", details=lambda: repr([t.name for t in threading.enumerate()])
    )
    return started


def _raw_items(app: App) -> int:
    with app.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(RawItem)) or 0)


def test_a_first_sync_fetches_in_a_process_and_ends_as_a_sync_that_fetched_first(
    app: App, prepared: App, clean: dict[str, Any], forks: list[FetchAhead | None]
) -> None:
    pages: list[int] = []
    progress: list[tuple[int, int]] = []
    report = run_once(app, on_page=pages.append, on_progress=lambda d, t: progress.append((d, t)), fetch_process=True)
    assert len(forks) == 1 and forks[0] is not None  # the fetch ran in a child
    assert forks[0].exitcode == 0
    assert not report.failed, report.failed
    assert {m.name: m.stored for m in report.mailboxes} == {"alice": 75, "bob": 40}
    assert sum(pages) == 115  # the child's pages reached this process's hook
    # One processing run followed the pages; its stats are the report's, and the progress total grew with them.
    assert report.stats.logged + report.stats.duplicates + sum(report.stats.skipped.values()) == 115
    assert progress[-1] == (115, 115)
    assert_same(snapshot(app), clean)


def test_sync_once_fetches_a_first_sync_in_a_process(
    cli, tmp_path: Path, forks: list[FetchAhead | None], monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The command's default on a machine with two cores; ``CRM_FETCH_PROCESS=0`` turns it off."""
    monkeypatch.setattr("workers.options._cores", lambda: 2)
    assert cli("init").code == 0
    for n, source in enumerate(("first", "second")):
        box = generated_mail(tmp_path / source, 12, shared_from=100 * n)
        assert cli("mailbox", "add", source, "--owner", REP, "--source", f"maildir://{box}").code == 0
        monkeypatch.setenv("CRM_FETCH_PROCESS", str(n))  # the first sync with 0, the second with 1
        result = cli("sync", "--once")
        assert result.code == 0, result.err
        assert f"{source}: idle, 12 new or changed items" in result.out
    assert [ahead is not None for ahead in forks] == [True]  # only the second command forked
    assert forks[0] is not None and forks[0].exitcode == 0


def test_a_resync_fetches_here_without_a_fork(
    app: App, prepared: App, forks: list[FetchAhead | None], tmp_path: Path
) -> None:
    run_once(app, fetch_process=True)
    box = mailbox.Maildir(tmp_path / "alice", create=False)
    for n in range(3):
        box.add(message(f"later{n}@acme.example", "wile@acme.example", [REP], f"Later {n}"))
    report = run_once(app, fetch_process=True)
    assert len(forks) == 1  # the first run forked; the second found every mailbox's cursor and did not try
    assert {m.name: m.stored for m in report.mailboxes} == {"alice": 3, "bob": 0}
    assert report.stats.logged == 3
    assert _raw_items(app) == 118


def test_with_another_thread_running_the_fetch_stays_in_this_process(
    app: App, prepared: App, clean: dict[str, Any], forks: list[FetchAhead | None]
) -> None:
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not can_fork()
        report = run_once(app, fetch_process=True)
    finally:
        release.set()
        other.join()
    assert forks == [None]
    assert not report.failed and {m.name: m.stored for m in report.mailboxes} == {"alice": 75, "bob": 40}
    assert_same(snapshot(app), clean)


class _DiesAfter:
    """The child's end of the pipe, which ends the child (as a kill would) once it has sent ``pages`` pages."""

    def __init__(self, pipe: Any, pages: int) -> None:
        self.pipe, self.pages = pipe, pages

    def send(self, message: tuple[str, object]) -> None:
        self.pipe.send(message)
        if message[0] == "page":
            self.pages -= 1
            if self.pages == 0:
                os._exit(7)

    def close(self) -> None:
        self.pipe.close()


def test_a_fetch_process_that_dies_half_way_loses_nothing_and_doubles_nothing(
    app: App,
    prepared: App,
    clean: dict[str, Any],
    forks: list[FetchAhead | None],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real = fetch_ahead._fetch
    monkeypatch.setattr(
        fetch_ahead, "_fetch", lambda settings, boxes, pipe, end: real(settings, boxes, _DiesAfter(pipe, 3), end)
    )
    with caplog.at_level(logging.WARNING, logger="workers.fetch_ahead"):
        report = run_once(app, fetch_process=True)
    assert forks[0] is not None and forks[0].exitcode == 7
    assert "ended with exit status 7" in caplog.text
    assert not report.failed, report.failed
    # The pages the child committed stay; this process synced the rest from their cursors and processed it all.
    assert 0 < sum(m.stored for m in report.mailboxes) < 115
    assert _raw_items(app) == 115
    assert_same(snapshot(app), clean)


def test_a_fetch_process_that_cannot_start_leaves_the_fetch_here(
    app: App,
    prepared: App,
    clean: dict[str, Any],
    forks: list[FetchAhead | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    def refuse(self: object) -> None:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr("multiprocessing.process.BaseProcess.start", refuse)
    report = run_once(app, fetch_process=True)
    assert forks == [None]
    assert not report.failed and {m.name: m.stored for m in report.mailboxes} == {"alice": 75, "bob": 40}
    assert_same(snapshot(app), clean)


# Runs ``run_once`` with a fetch process and kills itself (SIGKILL) when the first page is reported.
_KILLED_PARENT = """
import os, signal
from sync_service.bootstrap import bootstrap
from sync_service.pipeline.runner import run_once
run_once(bootstrap(), on_page=lambda count: os.kill(os.getpid(), signal.SIGKILL), fetch_process=True)
"""


def _running(marker: str) -> list[int]:
    """The processes whose command line holds ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if marker.encode() in cmdline.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                continue
    return found


def test_a_fetch_process_whose_parent_is_killed_stops_after_its_page(
    app: App, sources: dict[str, str], clean: dict[str, Any], tmp_path: Path
) -> None:
    prepare(app, sources)
    marker = f"crm-sync-test-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        "CRM_DATABASE_URL": app.settings.database_url,
        "CRM_DATA_DIR": str(app.settings.data_dir),
        "CRM_INTERNAL_DOMAINS": ",".join(app.settings.internal_domains),
        "CRM_BATCH_SIZE": "1",  # a page per message: the child has many pages left when its parent dies
    }
    parent = subprocess.run([sys.executable, "-c", _KILLED_PARENT, marker], env=env, timeout=120, check=False)
    assert parent.returncode == -signal.SIGKILL
    wait_for(lambda: not _running(marker), 30, "the orphaned fetch process to stop")
    stored = _raw_items(app)
    assert 0 < stored < 115  # it stopped after a page or two, at a committed page
    app.settings = replace(app.settings, batch_size=BATCH)
    report = run_once(app)  # the next sync goes on from the cursors the child left
    assert not report.failed, report.failed
    assert sum(m.stored for m in report.mailboxes) == 115 - stored
    assert_same(snapshot(app), clean)


@pytest.mark.parametrize("processes", [0, 1])
def test_a_processing_run_that_follows_a_fetch_waits_for_its_pages(
    app: App, prepared: App, clean: dict[str, Any], processes: int
) -> None:
    """The run starts before anything is stored: without ``follow`` it would end at once with nothing done."""
    progress = FetchProgress()

    def fetch() -> None:
        try:
            time.sleep(0.3)
            for box in selected_mailboxes(app, None):
                sync_mailbox(app, box, on_page=progress.page_stored)
        finally:
            progress.finish()

    fetcher = threading.Thread(target=fetch)
    fetcher.start()
    try:
        stats = process_pending(app, follow=progress, parse_processes=processes)
    finally:
        fetcher.join()
    assert progress.done and progress.items == 115
    assert stats.logged + stats.duplicates + sum(stats.skipped.values()) == 115
    assert_same(snapshot(app), clean)


def test_fetch_progress_wakes_its_follower_on_a_page_or_the_end() -> None:
    progress = FetchProgress()
    seen = progress.seen()
    started = time.monotonic()
    progress.wait(seen, 0.05)  # nothing happens: the timeout
    assert time.monotonic() - started >= 0.05

    actions: list[Callable[[], None]] = [lambda: progress.page_stored(4), progress.finish]
    for action in actions:
        seen = progress.seen()
        timer = threading.Timer(0.05, action)
        timer.start()
        started = time.monotonic()
        progress.wait(seen, 30)
        assert time.monotonic() - started < 10  # woken, not timed out
        timer.join()
    assert progress.seen().pages == 1 and progress.items == 4 and progress.done


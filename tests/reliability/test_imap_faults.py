"""IMAP sync under faults: Dovecot restarts between pages, connections cut mid-fetch, an outage across runs.

A real Dovecot holds a few thousand generated messages (CRM contacts, a shared Gmail address, attachments).
Every scenario syncs them into a fresh database through the product's own path (``run_once``: the embedded
queue, the connector's reconnects, the workers' retries) while something breaks, and must end equal to a clean
run, compared by natural keys (``tests.workers.conftest.snapshot``): the same activities, documents, contacts,
raw items (external id, state, sha256 of the bytes), quarantine, and ``items_synced`` (every item stored once).

The existing ``tests/imap`` restart tests check a small sync by counts; these check large, multi-page syncs
against a clean run, with faults placed inside FETCH responses (``tests/support/tcp_proxy.py``).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crm_store.db import transaction
from crm_store.migrate import upgrade
from crm_store.models import Mailbox
from crm_store.secrets import generate_key
from crm_store.seed import seed_defaults
from sync_service import mailboxes
from sync_service.bootstrap import App, bootstrap
from sync_service.pipeline.runner import SyncReport, run_once
from tests.conftest import make_settings
from tests.support.builders import REP, seed_crm
from tests.support.dovecot import DovecotServer
from tests.support.tcp_proxy import Fault, FaultProxy, Mode
from tests.workers.conftest import _generated, assert_same, snapshot

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

COUNT = 2000  # messages in INBOX, ~680 KB
BATCH = 200  # a page: 10 pages of ~70 KB of FETCH responses
PASSWORD = "rel-Pa55"
NAME = "alice-imap"
KEY = generate_key()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The product's reconnect and retry logic, with test-sized delays (the defaults wait seconds)."""
    monkeypatch.setattr("sync_service.connectors.imap.BACKOFF", (0.1, 0.2, 0.4, 0.8))
    monkeypatch.setenv("CRM_RETRY_MIN_BACKOFF_MS", "50")
    monkeypatch.setenv("CRM_RETRY_MAX_BACKOFF_MS", "200")


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    server = DovecotServer({"alice": PASSWORD})
    server.start()
    try:
        server.deliver("alice", (_generated(n) for n in range(COUNT)))
        yield server
    finally:
        server.close()


def _app(tmp_path: Path, name: str) -> App:
    app = bootstrap(
        make_settings(f"sqlite:///{tmp_path / name}.db", tmp_path / f"{name}-data", secret_keys=(KEY,),
                      batch_size=BATCH)
    )  # fmt: skip
    upgrade(app.engine)
    with transaction(app.sessions) as session:
        seed_defaults(session)
        seed_crm(session)
    return app


def _sync(tmp_path: Path, name: str, port: int, query: str = "", runs: int = 1,
          on_page: Callable[[int], None] | None = None) -> tuple[dict[str, Any], list[SyncReport]]:  # fmt: skip
    """A fresh database with the IMAP mailbox (via ``port``), ``runs`` × ``run_once``: (snapshot, reports)."""
    app = _app(tmp_path, name)
    url = f"imap://alice@127.0.0.1:{port}/?folders=INBOX" + (f"&{query}" if query else "")
    try:
        with transaction(app.sessions) as session:
            mailboxes.add_mailbox(session, NAME, REP, url, PASSWORD, app.settings.secret_keys)
        reports = [run_once(app, on_page=on_page) for _ in range(runs)]
        return snapshot(app), reports
    finally:
        app.close()


@pytest.fixture(scope="module")
def clean(dovecot: DovecotServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    state, [report] = _sync(tmp_path_factory.mktemp("clean"), "clean", dovecot.port)
    assert not report.failed, report.failed
    assert len(state["raw_items"]) == COUNT and len(state["activities"]) > COUNT // 2
    assert state["documents"], "the generated mail has attachments: documents expected"
    return state


def test_dovecot_restarts_between_pages(dovecot: DovecotServer, clean: dict[str, Any], tmp_path: Path) -> None:
    pages: list[int] = []
    timer: list[threading.Timer] = []

    def restart(stored: int) -> None:
        pages.append(stored)
        if len(pages) == 2:
            dovecot.restart()  # back at once: the connector's next command finds its connection dead
        elif len(pages) == 5:
            dovecot.stop()  # down for a while: the reconnects meet a refused connection first
            timer.append(threading.Timer(0.6, dovecot.boot))
            timer[0].start()

    state, [report] = _sync(tmp_path, "restarts", dovecot.port, on_page=restart)
    timer[0].join()
    assert not report.failed, report.failed
    assert len(pages) == COUNT // BATCH and sum(pages) == COUNT  # every page fetched and stored once
    assert_same(state, clean)


def test_connections_cut_in_the_middle_of_fetch_responses(
    dovecot: DovecotServer, clean: dict[str, Any], tmp_path: Path
) -> None:
    seed = random.randrange(1_000_000)
    chance = random.Random(seed)
    modes: list[Mode] = ["close", "close", "close", "reset", "reset", "reset", "stall", "stall"]
    chance.shuffle(modes)
    # Each connection is cut after a random share of the mail (greeting, login and listings count too, so a cut
    # may land anywhere); together they stay well under the whole transfer, so every fault fires.
    total = sum(len(_generated(n)) for n in range(COUNT))
    faults = [Fault(chance.randrange(2_000, total // (len(modes) + 2)), mode) for mode in modes]
    with FaultProxy(dovecot.port) as proxy:
        proxy.plan(*faults)
        # timeout=2: a stalled connection is given up after 2 s (the default is 60).
        state, reports = _sync(tmp_path, "cuts", proxy.port, query="timeout=2")
    assert not reports[0].failed, (reports[0].failed, f"seed {seed}")
    assert proxy.faults_hit == len(faults), f"only {proxy.faults_hit} of the faults {faults} fired (seed {seed})"
    assert_same(state, clean)


def test_an_outage_longer_than_the_retries_is_finished_by_the_next_run(
    dovecot: DovecotServer, clean: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_MAX_RETRIES", "1")
    pages: list[int] = []
    with FaultProxy(dovecot.port) as proxy:

        def outage(stored: int) -> None:
            pages.append(stored)
            if len(pages) == 4:  # the network goes away in the middle of the sync
                proxy.down = True
                proxy.drop_connections()

        app = _app(tmp_path, "outage")
        try:
            url = f"imap://alice@127.0.0.1:{proxy.port}/?folders=INBOX"
            with transaction(app.sessions) as session:
                mailboxes.add_mailbox(session, NAME, REP, url, PASSWORD, app.settings.secret_keys)
            first = run_once(app, on_page=outage)
            with app.sessions() as session:
                failures = session.scalar(select(Mailbox.consecutive_failures))
            proxy.down = False
            second = run_once(app)
            state = snapshot(app)
        finally:
            app.close()
    [failed] = first.failed
    assert failed.transient and "gave up after" in (failed.error or ""), failed
    assert failures == 1  # the sync and its one retry (CRM_MAX_RETRIES=1) both met the outage: one failed sync
    assert proxy.refused >= 2 * 4 and sum(pages) == 4 * BATCH  # nothing was stored while the network was down
    assert first.stats.logged > 0  # what the first run had stored was processed then
    assert not second.failed and sum(m.stored for m in second.mailboxes) == COUNT - 4 * BATCH
    assert_same(state, clean)

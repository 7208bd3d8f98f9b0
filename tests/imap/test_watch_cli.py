"""`crm-sync watch` as a process: Redis mode, a sync message in Redis after an APPEND, SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from crm_store.db import transaction
from sync_service import mailboxes
from sync_service.bootstrap import App
from tests.conftest import REPO
from tests.imap.conftest import PASSWORD
from tests.imap.test_watch import mail, wait_for
from tests.support.builders import REP
from tests.support.dovecot import DovecotServer


def events(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def test_watch_command_enqueues_in_redis_and_stops_on_sigterm(
    dovecot: DovecotServer, keyed_app: App, redis_url: str, secret_key: str, tmp_path: Path
) -> None:
    with transaction(keyed_app.sessions) as session:
        url = dovecot.url("alice", query="idle=1&folders=INBOX")
        alice = mailboxes.add_mailbox(session, "alice-idle", REP, url, PASSWORD, keyed_app.settings.secret_keys).id
    env = {**os.environ, "CRM_DATABASE_URL": keyed_app.settings.database_url, "CRM_BROKER_URL": redis_url,
           "CRM_SECRET_KEY": secret_key, "CRM_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(REPO)}  # fmt: skip
    log = tmp_path / "watch.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "sync_service.cli.main", "watch", "--refresh", "1"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    try:
        wait_for(lambda: any(e.get("event") == "watch_ready" for e in events(log)), 20, "IDLE on INBOX")
        dovecot.append("alice", [mail("cli1"), mail("cli2")])
        wait_for(lambda: client.llen("dramatiq:sync") == 1, 5, "one sync message in Redis")
        body = json.loads(next(iter(client.hvals("dramatiq:sync.msgs"))))
        assert body["actor_name"] == "sync_mailbox" and body["args"] == [alice]
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0 and time.monotonic() - started < 5
        assert [e["event"] for e in events(log)][-1] == "watch_stop"
        assert PASSWORD not in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        client.close()

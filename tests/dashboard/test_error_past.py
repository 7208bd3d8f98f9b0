"""A mailbox whose last error was followed by a successful sync: the error stays on record (status --json), and
the views say it is over — status, mailbox list, the dashboard — instead of showing it beside a healthy state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from crm_store.db import transaction
from crm_store.models import Mailbox
from sync_service.dashboard.app import create_app
from tests.dashboard.conftest import Seeded, log_in, make_config
from tests.support.builders import REP, maildir, message

ERROR = "Exchange is throttling this account (ErrorServerBusy)"


def _errored_then_synced(seeded: Seeded, name: str) -> None:
    now = datetime.now(UTC)
    with transaction(seeded.app.sessions) as session:
        session.execute(
            update(Mailbox)
            .where(Mailbox.name == name)
            .values(state="idle", last_error=ERROR, last_error_at=now - timedelta(minutes=5), last_success_at=now)
        )


def test_an_error_a_later_sync_got_past_is_marked_over_on_the_dashboard(seeded: Seeded) -> None:
    _errored_then_synced(seeded, "alice")
    with TestClient(create_app(seeded.app, make_config()), base_url="http://testserver") as client:
        log_in(client)
        page = client.get("/").text
    alice = page[page.index('id="mailbox-alice"') :]
    alice = alice[: alice.index("</tr>")]
    assert "Over: a later sync succeeded." in alice and 'class="error-plain muted"' in alice
    broken = page[page.index('id="mailbox-broken"') :]
    assert "Over: a later sync succeeded." not in broken[: broken.index("</tr>")]  # still failing


def test_status_and_mailbox_list_mark_it_over(cli, database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine

    assert cli("init").code == 0
    mail = maildir(tmp_path / "mail", [message("m1@acme.example", "wile@acme.example", [REP], "Hello")])
    assert cli("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{mail}").code == 0
    assert cli("sync", "--once").code == 0
    engine = create_engine(database_url)

    def error_at(delta: timedelta) -> None:
        with engine.begin() as connection:
            connection.execute(update(Mailbox).values(last_error=ERROR, last_error_at=datetime.now(UTC) + delta))

    def rows() -> tuple[str, str]:
        shown = [next(line for line in cli(*args).out.splitlines() if "alice" in line)
                 for args in (("status",), ("mailbox", "list"))]  # fmt: skip
        return shown[0], shown[1]

    try:
        error_at(timedelta(minutes=-5))  # before the sync that succeeded
        assert all("(over) Exchange is throttling" in row for row in rows())
        assert json.loads(cli("status", "--json").out)["mailboxes"][0]["last_error"] == ERROR  # kept on record
        error_at(timedelta(minutes=5))  # after it: current
        assert all("Exchange is throttling" in row and "(over)" not in row for row in rows())
    finally:
        engine.dispose()

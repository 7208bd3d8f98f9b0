"""SPEC §6: a mailbox secret never reaches an error — not `sync`'s output, `status --json`, the logs or the
``mailboxes`` table (hence the dashboard) — even when the server or a library echoes it back."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from crm_store.secrets import generate_key
from tests.support.builders import REP
from tests.support.leaky import SCHEME_ENTRY, EchoingImapServer, leak

GRANT = json.dumps({
    "token_url": "https://login.example/token", "client_id": "crm-sync-app",
    "refresh_token": "0.AR8A-refresh+token/with=chars", "client_secret": "cl1ent~Secret.XYZZY",
})  # fmt: skip


def _leaks(cli: Any, caplog: pytest.LogCaptureFixture, database_url: str, *needles: str) -> list[str]:
    """Every place a needle shows up: stdout/stderr of the commands run, `status --json`, the logs, the table."""
    status = cli("status", "--json")
    assert status.code == 0, status.err
    records = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    engine = create_engine(database_url)
    with engine.connect() as conn:
        table = " ".join(str(row) for row in conn.execute(text("SELECT * FROM mailboxes")))
    engine.dispose()
    places = {"status --json": status.out + status.err, "logs": records + caplog.text, "mailboxes table": table}
    return [f"{needle!r} in {where}" for needle in needles for where, shown in places.items() if needle in shown]


@pytest.fixture
def keyed_cli(cli: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Any:
    monkeypatch.setenv("CRM_SECRET_KEY", generate_key())
    monkeypatch.setenv("CRM_FETCH_PROCESS", "0")  # the sync runs in this process: its logs are captured too
    monkeypatch.setenv("CRM_MAX_RETRIES", "0")  # a transient failure is reported at once
    caplog.set_level(logging.DEBUG)
    assert cli("init").code == 0
    return cli


@pytest.mark.parametrize(
    ("secret", "query"),
    [
        ("Sup3rS3cretPassw0rd-XYZZY", "folders=INBOX"),  # LOGIN: echoed verbatim
        ("pa\"ss\\wo'rd-XYZZY", "folders=INBOX"),  # LOGIN: IMAP-quoted, then escaped in a bytes repr
        ("pässwörd-XYZZY", "folders=INBOX"),  # non-ASCII: AUTHENTICATE PLAIN, echoed in base64
        ("ya29.access-token-XYZZY", "folders=INBOX&auth=xoauth2"),  # XOAUTH2: echoed in base64
    ],
    ids=["login", "quoted", "plain", "xoauth2"],
)
def test_a_server_echoing_the_credentials_leaks_nothing(
    keyed_cli: Any,
    caplog: pytest.LogCaptureFixture,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    secret: str,
    query: str,
) -> None:
    monkeypatch.setenv("BOX_SECRET", secret)
    with EchoingImapServer() as server:
        added = keyed_cli("mailbox", "add", "m", "--owner", REP, "--source", server.url(query=query),
                          "--secret-env", "BOX_SECRET")  # fmt: skip
        assert added.code == 0, added.err
        synced = keyed_cli("-v", "sync", "--once")
    assert synced.code == 1 and "login failed" in synced.err and "AUTHENTICATIONFAILED" in synced.err
    assert "***" in synced.out + synced.err  # the server's answer is kept, only the secret is masked
    shown = synced.out + synced.err
    assert "XYZZY" not in shown, shown
    assert _leaks(keyed_cli, caplog, database_url, "XYZZY") == []


@pytest.mark.parametrize(
    ("fail", "form", "secret", "needles"),
    [
        ("permanent", "raw", "plain-Secret-XYZZY", ["XYZZY"]),
        ("transient", "base64", "plain-Secret-XYZZY", ["XYZZY", leak("plain-Secret-XYZZY", "base64")]),
        ("permanent", "bytes", "pässwörd-XYZZY", ["XYZZY"]),
        ("unexpected", "raw", "plain-Secret-XYZZY", ["XYZZY"]),
        ("permanent", "json", GRANT, ["XYZZY", "refresh+token", "refresh%2Btoken"]),
    ],
    ids=["permanent", "transient-base64", "bytes-repr", "unexpected", "json-grant"],
)
def test_a_connector_error_carrying_the_secret_is_masked_by_the_sync(
    keyed_cli: Any,
    caplog: pytest.LogCaptureFixture,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    fail: str,
    form: str,
    secret: str,
    needles: list[str],
) -> None:
    """Whatever the connector: the runner masks the secret (and its credentials and encodings) itself."""
    monkeypatch.setenv("CRM_EXTRA_CONNECTORS", SCHEME_ENTRY)
    monkeypatch.setenv("BOX_SECRET", secret)
    source = f"leaky:///?fail={fail}&form={form}"
    assert keyed_cli("mailbox", "add", "m", "--owner", REP, "--source", source, "--secret-env", "BOX_SECRET").code == 0
    synced = keyed_cli("sync", "--once")
    assert synced.code == 1 and "the server said: " in synced.err and "***" in synced.err and "(end)" in synced.err
    shown = synced.out + synced.err
    assert not [n for n in needles if n in shown], shown
    assert _leaks(keyed_cli, caplog, database_url, *needles) == []
    status = json.loads(keyed_cli("status", "--json").out)["mailboxes"][0]
    assert "the server said: " in status["last_error"] and "***" in status["last_error"]
    assert status["state"] == ("failed" if fail == "permanent" else "idle")

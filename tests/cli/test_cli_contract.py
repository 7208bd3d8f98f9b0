"""The command-line contract of SPEC §5: commands, exit codes, one-line errors, JSON export shapes."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.builders import REP, maildir, message
from tests.support.flaky import SCHEME_ENTRY, flaky_url

ACCOUNTS = "Name,Type,Domains,Territory,Owner\nACME,customer,acme.example;acme-rockets.example,West,{rep}\n"
CONTACTS = (
    "First Name,Last Name,Company,E-mail Address,E-mail 2 Address,Business Phone,Notes\n"
    "Wile,Coyote,ACME,wile@acme.example,wile@gmail.com,+1 202 555 0100,ignored\n"
)
LEADS = (
    "Name,Company,Email,Phone,Status,Source,Owner\nRita Lead,Initrode,rita@initrode.example,,Initial Lead,Expo,{rep}\n"
)
OPPS = (
    "Title,Account,Stage,Owner,Contacts,Amount,Close Date,Source\n"
    "Rockets,ACME,Presentation,{rep},wile@acme.example,1200.50,2027-01-31,Referral\n"
)


IMAP_SOURCE = "imaps://rep@127.0.0.1:1/"  # never connected to: adding a mailbox does no network I/O


@pytest.fixture
def crm_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for kind, text in (("accounts", ACCOUNTS), ("contacts", CONTACTS), ("leads", LEADS), ("opportunities", OPPS)):
        path = tmp_path / f"{kind}.csv"
        path.write_text(text.format(rep=REP), encoding="utf-8")
        files[kind] = path
    return files


@pytest.fixture
def ready(cli, crm_files):  # type: ignore[no-untyped-def]
    assert cli("init").code == 0
    for kind in ("accounts", "contacts", "leads", "opportunities"):
        result = cli("import", kind, str(crm_files[kind]))
        assert result.code == 0, result.err
    return cli


def _json(result) -> list[dict]:  # type: ignore[no-untyped-def]
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert isinstance(data, list)
    return data


def test_init_is_idempotent(cli) -> None:  # type: ignore[no-untyped-def]
    first = cli("init")
    assert first.code == 0 and "lookup values" in first.out
    second = cli("init")
    assert second.code == 0 and "added 0 lookup values and 0 processes" in second.out


def test_commands_before_init_fail_with_one_line(cli, database_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before = sorted(tmp_path.rglob("*"))
    for args in (("status",), ("export", "documents"), ("mailbox", "list")):
        result = cli(*args)
        assert result.code == 1, args
        assert result.err.strip().count("\n") == 0 and "crm-sync init" in result.err, result.err
    if database_url.startswith("sqlite"):  # no empty database file is left behind
        assert "no database at" in result.err
        assert sorted(tmp_path.rglob("*")) == before


def test_unforeseen_faults_are_one_line_too(ready, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sync_service.cli.reporting

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(sync_service.cli.reporting, "collect_status", broken)
    result = ready("status")
    unexpected = "crm-sync: error: unexpected RuntimeError: boom (run with --verbose for the traceback)\n"
    assert (result.code, result.err) == (1, unexpected)
    monkeypatch.setenv("CRM_DATABASE_URL", "mysql://crm:pw@127.0.0.1:1/crm")
    other = ready("status")
    unsupported = "crm-sync: error: CRM_DATABASE_URL: crm-sync runs on SQLite and PostgreSQL, not 'mysql'\n"
    assert (other.code, other.err) == (1, unsupported)


def test_usage_errors_exit_2(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("no-such-command").code == 2
    assert cli("export").code == 2
    assert cli("mailbox", "add", "x").code == 2


def test_import_and_export_shapes(ready) -> None:  # type: ignore[no-untyped-def]
    accounts = _json(ready("export", "accounts", "--format", "json"))
    assert accounts[0]["domains"] == ["acme.example", "acme-rockets.example"] and accounts[0]["owner"] == REP
    contacts = _json(ready("export", "contacts", "--format", "json"))
    assert {k for k in contacts[0]} >= {"id", "name", "emails", "account", "source"}
    assert contacts[0]["emails"] == ["wile@acme.example", "wile@gmail.com"] and contacts[0]["account"] == "ACME"
    assert contacts[0]["source"] == "import"
    leads = _json(ready("export", "leads", "--format", "json"))
    assert {k for k in leads[0]} >= {"id", "name", "company", "emails", "status"}
    opps = _json(ready("export", "opportunities", "--format", "json"))
    assert {k for k in opps[0]} >= {"id", "title", "account", "stage", "status", "owner", "current_step", "history"}
    assert (opps[0]["account"], opps[0]["stage"], opps[0]["status"]) == ("ACME", "Presentation", "open")
    for kind in ("activities", "documents", "quarantine", "review"):
        assert _json(ready("export", kind, "--format", "json")) == []


def test_reimport_changes_nothing(ready, crm_files) -> None:  # type: ignore[no-untyped-def]
    before = {k: ready("export", k, "--format", "json").out for k in ("accounts", "contacts", "leads", "opportunities")}
    for kind in ("accounts", "contacts", "leads", "opportunities"):
        assert ready("import", kind, str(crm_files[kind])).code == 0
    after = {k: ready("export", k, "--format", "json").out for k in before}
    assert after == before


def test_bad_file_is_rejected_whole_with_line_number(ready, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.csv"
    bad.write_text("Name,Type,Domains,Territory,Owner\nGood,customer,good.example,,\nBad,alien,bad.example,,\n")
    result = ready("import", "accounts", str(bad))
    assert result.code == 1 and "line 3" in result.err and result.err.strip().count("\n") == 0
    names = [a["name"] for a in _json(ready("export", "accounts", "--format", "json"))]
    assert names == ["ACME"]


def test_mailbox_lifecycle_and_sync(ready, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    box = maildir(tmp_path / "mail", [message("a1@acme.example", "wile@acme.example", [REP], "Specs")])
    assert ready("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{box}").code == 0
    duplicate = ready("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{box}")
    assert duplicate.code == 1 and "already exists" in duplicate.err
    assert "alice" in ready("mailbox", "list").out
    assert ready("sync", "--once").code == 0
    acts = _json(ready("export", "activities", "--format", "json"))
    assert [(a["subject"], a["opportunity"], a["mailboxes"]) for a in acts] == [("Specs", "Rockets", ["alice"])]
    expected = {
        "id",
        "type",
        "subject",
        "status",
        "direction",
        "start",
        "end",
        "message_id",
        "ical_uid",
        "recurrence_id",
        "owner",
        "account",
        "accounts",
        "contacts",
        "lead",
        "opportunity",
        "mailboxes",
        "documents",
        "process_step",
    }
    assert expected <= set(acts[0])
    docs = _json(ready("export", "documents", "--format", "json"))
    assert {"id", "filename", "media_type", "size", "sha256", "account", "opportunity", "activity_id"} <= set(docs[0])
    status = json.loads(ready("status", "--json").out)
    assert status["mailboxes"][0]["name"] == "alice" and status["mailboxes"][0]["state"] == "idle"
    assert status["mailboxes"][0]["last_success"] and status["queue"]["pending"] == 0
    assert ready("mailbox", "pause", "alice").code == 0
    assert json.loads(ready("status", "--json").out)["mailboxes"][0]["state"] == "paused"
    assert ready("mailbox", "resume", "alice").code == 0
    assert ready("mailbox", "resync", "alice").code == 0
    assert ready("sync", "--once").code == 0
    assert len(_json(ready("export", "activities", "--format", "json"))) == 1  # resync duplicates nothing
    assert ready("mailbox", "remove", "alice").code == 0
    assert ready("mailbox", "remove", "alice").code == 1


def test_failed_mailbox_makes_sync_exit_1_but_others_sync(ready, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    box = maildir(tmp_path / "mail", [message("a1@acme.example", "wile@acme.example", [REP], "Specs")])
    assert ready("mailbox", "add", "good", "--owner", REP, "--source", f"maildir://{box}").code == 0
    (tmp_path / "gone").mkdir()
    assert ready("mailbox", "add", "gone", "--owner", REP, "--source", f"maildir://{tmp_path}/gone").code == 0
    (tmp_path / "gone").rmdir()  # the source vanished after it was added
    assert gc.get_freeze_count() == 0
    result = ready("sync", "--once")
    assert result.code == 1 and "gone" in result.err
    assert gc.get_freeze_count() > 0  # the one-shot sync exempted its start-up objects from the collector
    assert len(_json(ready("export", "activities", "--format", "json"))) == 1
    status = {m["name"]: m for m in json.loads(ready("status", "--json").out)["mailboxes"]}
    assert status["gone"]["state"] == "failed" and status["gone"]["last_error"]


def test_secret_is_encrypted_and_never_shown(ready, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from crm_store.secrets import generate_key

    monkeypatch.setenv("BOX_PASSWORD", "hunter2-very-secret")
    missing_key = ready(
        "mailbox", "add", "imapbox", "--owner", REP, "--source", IMAP_SOURCE, "--secret-env", "BOX_PASSWORD"
    )
    assert missing_key.code == 1 and "CRM_SECRET_KEY" in missing_key.err
    monkeypatch.setenv("CRM_SECRET_KEY", generate_key())
    added = ready(
        "mailbox", "add", "imapbox", "--owner", REP, "--source", IMAP_SOURCE, "--secret-env", "BOX_PASSWORD"
    )
    assert added.code == 0
    shown = ready("mailbox", "list").out + ready("status", "--json").out + added.out
    assert "hunter2" not in shown
    with_password = ready("mailbox", "add", "x", "--owner", REP, "--source", "maildir://u:pw@host/x")
    assert with_password.code == 1 and "password" in with_password.err


def test_unknown_export_kind_is_a_usage_error(ready) -> None:  # type: ignore[no-untyped-def]
    for kind in ("widgets", "Accounts"):
        result = ready("export", kind, "--format", "json")
        assert (result.code, result.out) == (2, "")
        assert kind in result.err and "'accounts'" in result.err  # the usage error names the kinds there are


def test_source_url_is_checked_when_the_mailbox_is_added(ready, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from crm_store.secrets import generate_key

    monkeypatch.setenv("CRM_SECRET_KEY", generate_key())
    monkeypatch.setenv("BOX_PASSWORD", "pw")
    missing = ready("mailbox", "add", "m", "--owner", REP, "--source", f"maildir://{tmp_path}/missing")
    assert missing.code == 1 and "does not exist" in missing.err and missing.err.count("\n") == 1
    source = f"{IMAP_SOURCE}?password=QuerySecret"
    bad_option = ready("mailbox", "add", "q", "--owner", REP, "--source", source, "--secret-env", "BOX_PASSWORD")
    assert bad_option.code == 1 and "password" in bad_option.err and "QuerySecret" not in bad_option.err
    assert ready("mailbox", "list").out.startswith("no mailboxes")


def test_credentials_in_a_feed_query_are_never_shown(ready) -> None:  # type: ignore[no-untyped-def]
    feed = "ics+https://cal.example/team/feed.ics?token=TOKSECRET&view=week"
    added = ready("mailbox", "add", "feed", "--owner", REP, "--source", feed)
    assert added.code == 0, added.err
    shown = added.out + ready("mailbox", "list").out + ready("status", "--json").out + ready("status").out
    assert "TOKSECRET" not in shown
    status = json.loads(ready("status", "--json").out)
    assert status["mailboxes"][0]["source"] == "ics+https://cal.example/team/feed.ics?token=***&view=week"


def test_env_file_of_the_working_directory_is_read(ready, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name in ("CRM_AUTO_CREATE", "CRM_INTERNAL_DOMAINS"):  # restored after the test, whatever .env sets
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    (tmp_path / ".env").write_text("CRM_AUTO_CREATE=sometimes\n", encoding="utf-8")
    result = ready("status")
    assert result.code == 1 and "CRM_AUTO_CREATE" in result.err and result.err.count("\n") == 1
    monkeypatch.setenv("CRM_AUTO_CREATE", "none")  # the environment wins over the file
    assert ready("status").code == 0


def _dead_letters(redis_url: str, monkeypatch: pytest.MonkeyPatch, calls: list[tuple[str, tuple[int, ...]]]) -> None:
    """Send each ``(actor, args)`` to Redis, let a worker fetch it and give up: a dead letter each."""
    from sync_service.config import load_settings
    from workers.broker import setup_broker

    monkeypatch.setenv("CRM_BROKER_URL", redis_url)
    runtime = setup_broker(load_settings())
    try:
        for actor, args in calls:
            queue = runtime.actors.send(actor, *args).queue_name
            fetched = runtime.broker.do_fetch(queue, 1)  # type: ignore[attr-defined]
            runtime.broker.do_nack(queue, json.loads(fetched[0])["options"]["redis_message_id"])  # type: ignore[attr-defined]
    finally:
        runtime.close()


def _alice_and_bob(cli: Any, database_url: str, tmp_path: Path) -> dict[str, int]:
    """An initialised database with two mailboxes, alice and bob; their ids."""
    from sqlalchemy import create_engine, text

    assert cli("init").code == 0
    mail = maildir(tmp_path / "mail", [message("m1@acme.example", "wile@acme.example", [REP], "Hello")])
    for name in ("alice", "bob"):  # one Maildir for both: meant (a second mailbox on a source is refused by default)
        add = ("mailbox", "add", name, "--owner", REP, "--source", f"maildir://{mail}", "--allow-shared-source")
        assert cli(*add).code == 0
    engine = create_engine(database_url)
    with engine.connect() as conn:
        ids = {name: id_ for name, id_ in conn.execute(text("SELECT name, id FROM mailboxes"))}
    engine.dispose()
    return ids


def test_requeue_dead_letters_of_one_mailbox(
    cli: Any, database_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _alice_and_bob(cli, database_url, tmp_path)
    embedded = cli("queue", "requeue-dead", "--mailbox", "alice")
    assert embedded.code == 1 and "CRM_BROKER_URL=redis://" in embedded.err and embedded.err.count("\n") == 1
    alice, bob = ids["alice"], ids["bob"]
    _dead_letters(redis_url, monkeypatch, [("sync_mailbox", (alice,)), ("process_items", (alice,)),
                                           ("sync_mailbox", (bob,)), ("rematch", ())])  # fmt: skip

    result = cli("queue", "requeue-dead", "--mailbox", "alice")
    assert (result.code, result.out.strip()) == (0, "requeued 2 dead-lettered messages of mailbox alice")
    queues = json.loads(cli("status", "--json").out)["queue"]["queues"]
    assert (queues["sync"]["ready"], queues["sync"]["dead_lettered"]) == (1, 1)  # bob's stays dead
    assert (queues["process"]["ready"], queues["process"]["dead_lettered"]) == (1, 1)  # rematch stays dead
    again = cli("queue", "requeue-dead", "--mailbox", "bob", "--queue", "process")
    assert (again.code, again.out.strip()) == (0, "requeued 0 dead-lettered messages of mailbox bob")
    unknown = cli("queue", "requeue-dead", "--mailbox", "nobody")
    assert (unknown.code, unknown.out, unknown.err) == (1, "", "crm-sync: error: no mailbox named 'nobody'\n")
    assert cli("queue", "requeue-dead", "--mailbox").code == 2
    typo = cli("queue", "requeue-dead", "--queue", "sink")
    assert typo.code == 2 and "unknown queue sink (queues: sync, process, maintenance)" in typo.err  # usage
    everything = cli("queue", "requeue-dead")
    assert (everything.code, everything.out.strip()) == (0, "requeued 2 dead-lettered messages")


def test_removing_a_mailbox_drops_its_dead_letters(
    cli: Any, database_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _alice_and_bob(cli, database_url, tmp_path)
    _dead_letters(redis_url, monkeypatch, [("sync_mailbox", (ids["alice"],)), ("process_items", (ids["alice"],)),
                                           ("sync_mailbox", (ids["bob"],))])  # fmt: skip
    removed = cli("mailbox", "remove", "alice")
    assert removed.code == 0
    assert removed.out.splitlines() == ["mailbox alice: removed", "mailbox alice: 2 dead-lettered messages dropped"]
    queues = json.loads(cli("status", "--json").out)["queue"]["queues"]
    assert (queues["sync"]["dead_lettered"], queues["process"]["dead_lettered"]) == (1, 0)  # bob's stays


def test_sync_parses_ahead_in_a_helper_process_on_two_cores(ready, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import workers.options
    from sync_service.pipeline.handover import Handover

    started: list[int] = []
    real = Handover.start

    def start(app, now, processes, *rest):  # type: ignore[no-untyped-def]
        started.append(processes)
        return real(app, now, processes, *rest)

    monkeypatch.setattr(Handover, "start", start)
    monkeypatch.setattr(workers.options, "_cores", lambda: 2)
    monkeypatch.delenv("CRM_PARSE_PROCESSES", raising=False)
    monkeypatch.setenv("CRM_BATCH_SIZE", "2")
    mails = [message(f"p{i}@acme.example", "wile@acme.example", [REP], f"Specs {i}") for i in range(6)]
    box = maildir(tmp_path / "mail", mails)
    assert ready("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{box}").code == 0
    assert ready("sync", "--once").code == 0
    assert started == [1]  # more than one batch pending: one helper
    acts = _json(ready("export", "activities", "--format", "json"))
    assert sorted(a["subject"] for a in acts) == [f"Specs {i}" for i in range(6)]


def test_a_failed_one_shot_sync_says_one_line_on_stderr(ready, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A real `crm-sync sync --once` process: no progress bar residue, no retry warnings, just the reason."""
    monkeypatch.setenv("CRM_EXTRA_CONNECTORS", SCHEME_ENTRY)
    box = maildir(tmp_path / "busy", [message("b1@acme.example", "wile@acme.example", [REP], "Specs")])
    source = flaky_url(box, throttle=100, retry_after=0, counter=tmp_path / "count")
    assert ready("mailbox", "add", "busy", "--owner", REP, "--source", source).code == 0
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "CRM_MAX_RETRIES": "1",
        "CRM_RETRY_MIN_BACKOFF_MS": "10",
    }
    done = subprocess.run(
        [sys.executable, "-m", "sync_service.cli.main", "sync", "--once"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == (
        "crm-sync: error: mailbox busy did not sync this time (tried again at the next run): "
        "server busy: too many requests\n"
    )  # a temporary failure: the mailbox stays idle, not "failed"
    assert "busy" in done.stdout  # the summary still goes to standard output
    verbose = subprocess.run(
        [sys.executable, "-m", "sync_service.cli.main", "-v", "sync", "--once"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert verbose.returncode == 1 and "Retries exceeded" in verbose.stderr  # --verbose shows the details

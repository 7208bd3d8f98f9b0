"""End to end through ``crm-sync``: a Microsoft 365 mailbox (``graph://`` against the fake server) gives the
same activities and contacts as the same messages, events and cards read from a Maildir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crm_store.db import transaction
from crm_store.secrets import generate_key
from sync_service.bootstrap import bootstrap
from tests.conftest import make_settings
from tests.graph.conftest import CLIENT_ID, CLIENT_SECRET
from tests.graph.scenario import fill_graph, fill_maildir, week
from tests.support.builders import REP, seed_crm
from tests.support.graph_server import FakeGraphServer


def _crm_with_mailbox(cli: Any, monkeypatch: pytest.MonkeyPatch, db: str, data: Path, source: str) -> None:
    monkeypatch.setenv("CRM_DATABASE_URL", db)
    monkeypatch.setenv("CRM_DATA_DIR", str(data))
    assert cli("init").code == 0
    app = bootstrap(make_settings(db, data))
    with transaction(app.sessions) as session:
        seed_crm(session)
    app.close()
    added = cli("mailbox", "add", "alice", "--owner", REP, "--source", source, "--secret-env", "GRAPH_SECRET")
    assert added.code == 0, added.err


def _export(cli: Any, kind: str, drop: tuple[str, ...]) -> list[dict[str, Any]]:
    result = cli("export", kind, "--format", "json")
    assert result.code == 0, result.err
    rows = [{k: v for k, v in row.items() if k not in drop} for row in json.loads(result.out)]
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


def test_graph_mailbox_and_maildir_give_the_same_crm(
    cli: Any, graph: FakeGraphServer, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mails = week()
    fill_graph(graph.mailbox(REP, "Alice"), mails)
    monkeypatch.setenv("CRM_SECRET_KEY", generate_key())
    monkeypatch.setenv("GRAPH_SECRET", CLIENT_SECRET)

    _crm_with_mailbox(cli, monkeypatch, database_url, tmp_path / "graph-data", graph.source_url(REP, CLIENT_ID))
    synced = cli("sync", "--once")
    assert synced.code == 0, synced.err
    from_graph = _export(cli, "activities", ("id", "mailboxes"))
    graph_contacts = _export(cli, "contacts", ("id",))
    listed = cli("mailbox", "list")
    assert CLIENT_SECRET not in listed.out + listed.err and "graph://" in listed.out

    box = fill_maildir(tmp_path / "alice-maildir", mails)
    other_db = f"sqlite:///{tmp_path / 'maildir.db'}"
    _crm_with_mailbox(cli, monkeypatch, other_db, tmp_path / "maildir-data", f"maildir://{box}")
    assert cli("sync", "--once").code == 0
    from_maildir = _export(cli, "activities", ("id", "mailboxes"))

    assert from_graph == from_maildir
    kinds = sorted((a["type"], a["status"], a["ical_uid"] or a["message_id"]) for a in from_graph)
    assert ("meeting", "cancelled", "visit@acme.example") in kinds
    assert ("call", "completed", "call@acme.example") in kinds
    steering = sorted(a["recurrence_id"] for a in from_graph if a["ical_uid"] == "steering@acme.example")
    assert len(steering) == 3  # four occurrences, one deleted; the moved one keeps its recurrence id
    assert any(a["documents"] == ["Rocket pricing.eml", "pricing.pdf"] for a in from_graph)
    assert {a["subject"] for a in from_graph}.isdisjoint({"Newsletter", "Lunch?", "Team lunch"})  # skipped
    assert _export(cli, "contacts", ("id",)) == graph_contacts
    assert any(c["name"] == "Road Runner" and c["source"] == "sync" for c in graph_contacts)
    assert not any("pal@gmail.com" in c["emails"] for c in graph_contacts)

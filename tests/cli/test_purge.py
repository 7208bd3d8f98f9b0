"""`crm-sync purge skipped`: the retention comes from --older-than or CRM_SKIPPED_RETENTION_DAYS (else a usage
error), --dry-run changes nothing, a run says what it purged and freed (as text or JSON)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from crm_store.db import make_engine
from crm_store.models import RawItem, SyncedItem
from tests.support.builders import REP, maildir, message


def _synced_long_ago(database_url: str) -> None:
    engine = make_engine(database_url)
    old = datetime.now(UTC) - timedelta(days=100)
    with engine.begin() as connection:
        connection.execute(update(RawItem).values(received_at=old))
        connection.execute(update(SyncedItem).values(created_at=old))
    engine.dispose()


def _state(database_url: str) -> tuple[object, ...]:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        items = sorted(map(tuple, connection.execute(select(SyncedItem.id, SyncedItem.skip_reason, SyncedItem.facts))))
        raws = sorted(map(tuple, connection.execute(select(RawItem.id, RawItem.state, RawItem.processed_at))))
    engine.dispose()
    files = {p: p.read_bytes() for p in Path("data").rglob("*") if p.is_file()}
    return items, raws, files


@pytest.fixture
def synced(cli, database_url: str, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    """Two private emails, synced 100 days ago."""
    box = maildir(
        tmp_path / "alice",
        [
            message(f"p{i}@elsewhere", "friend@elsewhere.example", [REP], f"Private {i}", body="x" * 3000)
            for i in range(2)
        ],
    )
    assert cli("init").code == 0
    assert cli("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{box}").code == 0
    assert cli("sync", "--once").code == 0
    _synced_long_ago(database_url)
    return database_url


def test_the_retention_must_be_given(cli, synced: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("purge", "skipped")
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        "crm-sync: usage error: give --older-than DAYS, or set CRM_SKIPPED_RETENTION_DAYS "
        "(see crm-sync purge skipped --help)"
    ]


def test_a_dry_run_changes_nothing_then_a_run_purges(cli, synced: str) -> None:  # type: ignore[no-untyped-def]
    before = _state(synced)
    preview = cli("purge", "skipped", "--older-than", "90", "--dry-run", "--json", "--min-age", "0")
    assert preview.code == 0, preview.err
    report = json.loads(preview.out)
    assert (report["dry_run"], report["items_purged"], report["copies_purged"]) == (True, 2, 2)
    assert report["blobs"]["packs_deleted"] == 1 and report["blobs"]["released"] > 6000
    assert _state(synced) == before

    text = cli("purge", "skipped", "--older-than", "90", "--dry-run")  # the default minimum age: an hour
    assert text.code == 0 and "Would purge 2 skipped emails synced more than 90 days ago" in text.out
    assert "0 packs deleted" in text.out and "0 B would be released" in text.out
    assert "Left as they are: 1 pack younger than 60 minutes or still held." in text.out  # just fetched
    assert _state(synced) == before

    done = cli("purge", "skipped", "--older-than", "90", "--min-age", "0")
    assert done.code == 0, done.err
    assert "Purged 2 skipped emails" in done.out and "the bytes of 2 mailbox copies" in done.out
    assert "1 pack deleted" in done.out and "Freed" in done.out
    assert _state(synced) != before
    assert not list(Path("data/blobs/packs").glob("*.pack"))  # the one fetched page held only this mail


def test_the_setting_is_the_default_and_younger_mail_stays(  # type: ignore[no-untyped-def]
    cli, synced: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_SKIPPED_RETENTION_DAYS", "120")
    result = cli("purge", "skipped", "--json", "--min-age", "0")
    assert result.code == 0 and json.loads(result.out)["items_purged"] == 0  # synced 100 days ago
    assert json.loads(cli("purge", "skipped", "--older-than", "99", "--json").out)["items_purged"] == 2

    monkeypatch.setenv("CRM_SKIPPED_RETENTION_DAYS", "a month")
    bad = cli("purge", "skipped")
    assert bad.code == 1
    assert bad.err.strip() == "crm-sync: error: CRM_SKIPPED_RETENTION_DAYS must be a whole number, got 'a month'"

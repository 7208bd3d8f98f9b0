"""``crm_store.bulkload``: rows written in bulk (COPY on PostgreSQL) read back exactly as an INSERT's would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm_store.bulkload import insert_rows, insert_rows_returning_ids
from crm_store.db import transaction
from crm_store.models import Activity, ItemSource, SyncedItem
from sync_service.bootstrap import App

TRICKY = [
    "tab\there",
    "line\nbreak\r\n",
    "back\\slash",
    "\\N",
    "",
    "naïve – ünïcode ✓",
    "100% 'quoted' \"x\"",
    "a,b;c|d",
]


def _item(i: int, **extra: object) -> dict[str, object]:
    return {
        "kind": "email",
        "dedupe_key": f"mid:<{i}@example.com>",
        "message_id": f"<{i}@example.com>",
        "subject": TRICKY[i % len(TRICKY)],
        "sent_at": datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=2))) + timedelta(minutes=i),
        "facts": {"from": [f"p{i}@example.com", TRICKY[i % len(TRICKY)]], "n": i, "nested": {"ok": True, "x": None}},
        **extra,
    }


def test_rows_read_back_as_written_with_ids_in_order_and_defaults(app: App) -> None:
    before = datetime.now(UTC)
    with transaction(app.sessions) as session:
        ids = insert_rows_returning_ids(session, SyncedItem, [_item(i) for i in range(300)])
        assert len(set(ids)) == 300 and ids == sorted(ids)
        activity_ids = insert_rows_returning_ids(
            session,
            Activity,
            [
                {
                    "type": "email",
                    "subject": TRICKY[i % len(TRICKY)],
                    "body": TRICKY[-i % len(TRICKY)] * 3,
                    "item_id": ids[i],
                }
                for i in range(0, 300, 3)
            ],
        )
        insert_rows(session, ItemSource, [])  # nothing to write: no statement
    with app.sessions() as session:
        items = {item.id: item for item in session.scalars(select(SyncedItem))}
        for i, item_id in enumerate(ids):
            item = items[item_id]
            assert item.dedupe_key == f"mid:<{i}@example.com>"
            assert item.subject == TRICKY[i % len(TRICKY)]
            assert item.sent_at == datetime(2026, 3, 1, 7, 30, tzinfo=UTC) + timedelta(minutes=i)
            assert item.facts == _item(i)["facts"]
            assert item.sequence == 0 and item.deleted_at_source is False  # Python-side defaults
            assert item.created_at >= before - timedelta(seconds=1) and item.created_at.tzinfo == UTC
        activities = session.scalars(select(Activity).order_by(Activity.id)).all()
        assert [a.id for a in activities] == activity_ids
        for n, activity in enumerate(activities):
            i = n * 3
            assert activity.item_id == ids[i] and activity.subject == TRICKY[i % len(TRICKY)]
            assert activity.body == TRICKY[-i % len(TRICKY)] * 3
            assert (activity.status, activity.origin, activity.opportunity_manual) == ("planned", "sync", False)


def test_new_rows_after_a_bulk_write_get_fresh_ids(app: App) -> None:
    with transaction(app.sessions) as session:
        ids = insert_rows_returning_ids(session, SyncedItem, [_item(i) for i in range(5)])
    with transaction(app.sessions) as session:
        later = SyncedItem(kind="email", dedupe_key="mid:<later@example.com>", facts={})
        session.add(later)
        session.flush()
        assert later.id > max(ids)
        assert insert_rows_returning_ids(session, SyncedItem, [_item(9)])[0] > later.id


def test_a_unique_key_taken_raises_integrity_error_and_the_savepoint_recovers(app: App) -> None:
    with transaction(app.sessions) as session:
        insert_rows_returning_ids(session, SyncedItem, [_item(1)])
        with pytest.raises(IntegrityError), session.begin_nested():
            insert_rows_returning_ids(session, SyncedItem, [_item(2), _item(1)])
        insert_rows_returning_ids(session, SyncedItem, [_item(3)])  # the transaction goes on
    with app.sessions() as session:
        keys = set(session.scalars(select(SyncedItem.dedupe_key)))
    assert keys == {"mid:<1@example.com>", "mid:<3@example.com>"}

"""A full resync round decides deletions at its last page: nothing is marked deleted half-way."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from crm_store.db import transaction
from crm_store.models import FolderState, RawItem
from sync_service import mailboxes
from sync_service.bootstrap import App
from sync_service.connectors.base import ChangePage, ItemRef
from sync_service.connectors.base import RawItem as SourceItem
from sync_service.pipeline.fetch import sync_folder
from tests.support.builders import REP, message


@dataclass
class ScriptedSource:
    """Serves scripted pages; records the raw-item states seen by the test between pages."""

    pages: list[ChangePage]
    on_list: list[object] = field(default_factory=list)

    def folders(self) -> Sequence[str]:
        return ["INBOX"]

    def list_changes(self, folder: str, cursor: str | None, limit: int = 500) -> ChangePage:
        for hook in self.on_list:
            hook()  # type: ignore[operator]
        return self.pages.pop(0)

    def fetch(self, folder: str, refs: Sequence[ItemRef]) -> Iterator[SourceItem]:
        for ref in refs:
            data = message(f"{ref.external_id}@acme.example", "wile@acme.example", [REP], ref.external_id)
            yield SourceItem(ref, data)

    def close(self) -> None:
        pass


def _ref(name: str) -> ItemRef:
    return ItemRef(name, "message")


def _states(app: App) -> dict[str, str]:
    with app.sessions() as session:
        return dict(session.execute(select(RawItem.external_id, RawItem.state)).all())


def test_resync_marks_unseen_items_deleted_only_at_the_end(app: App) -> None:
    with transaction(app.sessions) as session:
        mailbox_id = mailboxes.add_mailbox(session, "box", REP, "maildir:///unused", None, ()).id
    first = ScriptedSource([ChangePage((_ref("a"), _ref("b"), _ref("c")), (), "c1")])
    sync_folder(app, mailbox_id, first, "INBOX")
    assert set(_states(app).values()) == {"pending"}

    seen_between: list[dict[str, str]] = []
    resync = ScriptedSource([
        ChangePage((_ref("a"),), (), "r1", more=True, full_resync=True),
        ChangePage((_ref("b"), _ref("d")), (), "r2", more=False),
    ])
    resync.on_list.append(lambda: seen_between.append(_states(app)))
    result = sync_folder(app, mailbox_id, resync, "INBOX")
    assert "deleted" not in seen_between[1].values()  # after page 1 of the round nothing is deleted yet
    assert _states(app) == {"a": "pending", "b": "pending", "c": "deleted", "d": "pending"}
    assert result.deleted == 1
    with app.sessions() as session:
        state = session.scalars(select(FolderState)).one()
    assert (state.stage, state.resync_started_at, state.cursor) == ("incremental", None, "r2")

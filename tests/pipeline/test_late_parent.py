"""A reply stored before the message it answers (SPEC §3 rule a; ``pipeline.awaited``): once the message is
stored and linked, the reply follows it — whichever mailbox syncs first — and what a person chose stays."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from crm_store.db import transaction
from crm_store.models import Activity, AwaitedRef
from sync_service.bootstrap import App
from sync_service.exports import export_activities, export_review
from sync_service.pipeline.runner import SyncReport
from tests.support.builders import REP, REP2, maildir, message
from tests.support.faults import fail_while_writing

EARLY, LATER = datetime(2026, 11, 2, 9, 0, tzinfo=UTC), datetime(2026, 11, 2, 11, 0, tzinfo=UTC)
HANK = "hank@globex.example"  # a participant of both of Globex's open opportunities: alone, a reply is ambiguous


def _proposal(crm: dict[str, int]) -> bytes:
    """Alice's message carries the Domes opportunity's tracking token (rule b)."""
    return message("offer@northwind", REP, [HANK], f"[OPP-{crm['domes']}] Dome pricing", at=EARLY)


def _reply() -> bytes:
    """Hank answers Alice and Bob; his mail client dropped the token from the subject."""
    return message("re1@globex", HANK, [REP, REP2], "Re: pricing", at=LATER, in_reply_to="offer@northwind")


def _activities(app: App) -> dict[str, dict[str, Any]]:
    with app.sessions() as session:
        return {a["message_id"]: a for a in export_activities(session)}


def _open_reviews(app: App) -> list[int]:
    with app.sessions() as session:
        return [r["activity_id"] for r in export_review(session)]


def _awaited(app: App) -> int:
    with app.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(AwaitedRef)) or 0)


def test_a_reply_synced_first_follows_the_message_it_answers_once_that_is_synced(
    app: App, crm: dict[str, int], add_mailbox: Callable[..., None], sync: Callable[..., SyncReport], tmp_path: Path
) -> None:
    add_mailbox("bob", maildir(tmp_path / "bob", [_reply()]), owner=REP2)
    add_mailbox("alice", maildir(tmp_path / "alice", [], sent=[_proposal(crm)]))
    sync(names=["bob"])
    reply = _activities(app)["re1@globex"]
    assert reply["opportunity"] is None and _open_reviews(app) == [reply["id"]]  # Lamps or Domes: review
    assert _awaited(app) == 1  # it waits for <offer@northwind>

    report = sync(names=["alice"])
    assert report.stats.replies == 1
    acts = _activities(app)
    assert acts["offer@northwind"]["opportunity"] == "Domes"  # by its token
    assert acts["re1@globex"]["opportunity"] == "Domes"  # rule a, now that the message it answers is known
    assert _open_reviews(app) == [] and _awaited(app) == 0


def test_the_same_mail_in_the_other_order_gives_the_same_links(
    app: App, crm: dict[str, int], add_mailbox: Callable[..., None], sync: Callable[..., SyncReport], tmp_path: Path
) -> None:
    add_mailbox("alice", maildir(tmp_path / "alice", [], sent=[_proposal(crm)]))
    add_mailbox("bob", maildir(tmp_path / "bob", [_reply()]), owner=REP2)
    sync(names=["alice"])
    report = sync(names=["bob"])
    assert report.stats.replies == 0 and _awaited(app) == 0  # the message was there: nothing waits
    acts = _activities(app)
    assert (acts["offer@northwind"]["opportunity"], acts["re1@globex"]["opportunity"]) == ("Domes", "Domes")
    assert _open_reviews(app) == []


def test_a_reply_whose_message_never_comes_keeps_waiting_and_costs_no_rematch(
    app: App, crm: dict[str, int], add_mailbox: Callable[..., None], sync: Callable[..., SyncReport], tmp_path: Path
) -> None:
    other = message("other@globex", HANK, [REP2], "Unrelated", at=LATER)
    add_mailbox("bob", maildir(tmp_path / "bob", [_reply(), other]), owner=REP2)
    assert sync().stats.replies == 0
    assert _awaited(app) == 1
    assert _activities(app)["re1@globex"]["opportunity"] is None


def test_an_opportunity_a_person_chose_for_the_reply_stays(
    app: App, crm: dict[str, int], add_mailbox: Callable[..., None], sync: Callable[..., SyncReport], tmp_path: Path
) -> None:
    add_mailbox("bob", maildir(tmp_path / "bob", [_reply()]), owner=REP2)
    add_mailbox("alice", maildir(tmp_path / "alice", [], sent=[_proposal(crm)]))
    sync(names=["bob"])
    with transaction(app.sessions) as session:  # Bob decided: the reply is about the lamps
        session.execute(
            update(Activity)
            .where(Activity.id == _activities(app)["re1@globex"]["id"])
            .values(opportunity_id=crm["lamp"], opportunity_manual=True)
        )
    sync(names=["alice"])
    assert _activities(app)["re1@globex"]["opportunity"] == "Hammock lamps"


def test_a_reply_linked_by_a_later_rule_moves_to_the_opportunity_of_the_message_it_answers(
    app: App, crm: dict[str, int], add_mailbox: Callable[..., None], sync: Callable[..., SyncReport], tmp_path: Path
) -> None:
    """Rule a comes before rule c: Wile (a participant of Rockets only) answers a message about the lamps."""
    about_lamps = message("lamps@northwind", REP, ["wile@acme.example"], f"[OPP-{crm['lamp']}] Lamps", at=EARLY)
    wiles = message("re2@acme", "wile@acme.example", [REP, REP2], "Re: Lamps", at=LATER, in_reply_to="lamps@northwind")
    add_mailbox("bob", maildir(tmp_path / "bob", [wiles]), owner=REP2)
    add_mailbox("alice", maildir(tmp_path / "alice", [], sent=[about_lamps]))
    sync(names=["bob"])
    assert _activities(app)["re2@acme"]["opportunity"] == "Rockets"  # rule c, alone
    sync(names=["alice"])
    assert _activities(app)["re2@acme"]["opportunity"] == "Hammock lamps"


def test_a_reply_processed_item_by_item_waits_for_its_message_too(
    app: App,
    crm: dict[str, int],
    add_mailbox: Callable[..., None],
    sync: Callable[..., SyncReport],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another email of the batch fails while it is written: the batch is redone item by item, and the reply
    still waits for the message it answers."""
    broken = message("broken@globex", HANK, [REP2], "Broken", at=LATER)
    add_mailbox("bob", maildir(tmp_path / "bob", [_reply(), broken]), owner=REP2)
    add_mailbox("alice", maildir(tmp_path / "alice", [], sent=[_proposal(crm)]))
    fail_while_writing(monkeypatch, "Broken")
    assert sync(names=["bob"]).stats.quarantined == 1
    assert _awaited(app) == 1
    sync(names=["alice"])
    assert _activities(app)["re1@globex"]["opportunity"] == "Domes"

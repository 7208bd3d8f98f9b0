"""A graph:// mailbox through the pipeline (run_once): resync without duplicates, deletes and cancellations,
throttling mid-round with resume from the stored page cursor, contacts, bad events, rotated secrets."""

from __future__ import annotations

import io
from datetime import timedelta

from sqlalchemy import func, select

from crm_store.models import Activity, ContactPhone, FolderState, Mailbox, QuarantineEntry, RawItem, SyncedItem
from crm_store.secrets import SecretBox
from sync_service.bootstrap import App
from sync_service.exports import export_activities, export_contacts
from sync_service.pipeline.runner import run_once, sync_mailbox
from tests.graph.scenario import NOW, WILE, fill_graph, week
from tests.support.builders import REP, message
from tests.support.graph_server import FakeGraphServer


def _count(app: App, model: type) -> int:
    with app.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _activities(app: App) -> list[dict]:
    with app.sessions() as session:
        return sorted(export_activities(session), key=lambda a: a["id"])


def _sync(app: App) -> None:
    report = run_once(app)
    assert not report.failed, report.failed


def test_a_410_resync_doubles_nothing_and_cancels_nothing(keyed_app: App, graph: FakeGraphServer,
                                                          graph_mailbox) -> None:  # fmt: skip
    box = graph.mailbox(REP)
    fill_graph(box, week())
    graph_mailbox()
    _sync(keyed_app)
    before = _activities(keyed_app)
    items, raws = _count(keyed_app, SyncedItem), _count(keyed_app, RawItem)
    graph.expire_sync_state()  # every folder's deltaLink is now answered with 410 Gone
    box.deliver(message("late@acme.example", "wile@acme.example", [REP], "One more thing"))
    _sync(keyed_app)
    after = _activities(keyed_app)
    assert after[: len(before)] == before  # same activities, same statuses (nothing cancelled by the resync)
    assert [a["message_id"] for a in after[len(before) :]] == ["late@acme.example"]
    assert _count(keyed_app, SyncedItem) == items + 1 and _count(keyed_app, RawItem) == raws + 1


def test_deleted_events_cancel_their_activity_deleted_mail_does_not(keyed_app: App, graph: FakeGraphServer,
                                                                    graph_mailbox) -> None:  # fmt: skip
    box = graph.mailbox(REP)
    demo = box.schedule("Rocket demo", NOW + timedelta(days=3), uid="demo@acme.example", attendees=WILE)
    mail = box.deliver(message("m1@acme.example", "wile@acme.example", [REP], "Rockets"))
    graph_mailbox()
    _sync(keyed_app)
    box.delete_event(demo)
    box.delete(mail)
    _sync(keyed_app)
    status = {a["ical_uid"] or a["message_id"]: a["status"] for a in _activities(keyed_app)}
    assert status == {"demo@acme.example": "cancelled", "m1@acme.example": "completed"}


def test_mail_moved_into_another_synced_folder_stays_one_activity(keyed_app: App, graph: FakeGraphServer,
                                                                   graph_mailbox) -> None:  # fmt: skip
    box = graph.mailbox(REP)
    box.add_folder("archive")
    mail = box.deliver(message("m1@acme.example", "wile@acme.example", [REP], "Rockets"))
    graph_mailbox(folders="inbox,archive")
    _sync(keyed_app)
    before = _activities(keyed_app)
    box.move(mail, "inbox", "archive")  # gone from the inbox's delta, new in the archive's
    _sync(keyed_app)
    assert _activities(keyed_app) == before  # one activity, still completed, nothing doubled
    assert _count(keyed_app, SyncedItem) == 1 and _count(keyed_app, RawItem) == 2  # the inbox copy and the moved one
    graph.mailbox(REP).deliver(message("m2@acme.example", "wile@acme.example", [REP], "Filed"), folder="archive")
    _sync(keyed_app)
    assert [a["message_id"] for a in _activities(keyed_app)] == ["m1@acme.example", "m2@acme.example"]


def test_throttled_mid_round_then_resumed_from_the_stored_page(keyed_app: App, graph: FakeGraphServer,
                                                               graph_mailbox) -> None:  # fmt: skip
    from dataclasses import replace

    box = graph.mailbox(REP)
    for n in range(5):
        box.deliver(message(f"t{n}@acme.example", "wile@acme.example", [REP], f"Rockets {n}"))
    app = replace(keyed_app, settings=replace(keyed_app.settings, batch_size=2))  # two messages a page
    mailbox_id = graph_mailbox(folders="inbox")
    graph.fail("$skiptoken", 429, retry_after="45")  # the second page is throttled
    with app.sessions() as session:
        mailbox = session.get_one(Mailbox, mailbox_id)
    result = sync_mailbox(app, mailbox)  # the workers' step (run_once would wait 45 s and retry it)
    assert result.transient and result.retry_after == 45.0
    assert _count(app, RawItem) == 2  # the first page was stored, with its cursor
    with app.sessions() as session:
        state = session.scalar(select(FolderState).where(FolderState.mailbox_id == mailbox_id))
        assert state is not None and "$skiptoken" in (state.cursor or "")
        assert session.get_one(Mailbox, mailbox_id).last_error
    _sync(app)
    assert len(graph.graph_requests("/$value")) == 5  # the first page's messages were not downloaded again
    assert len(_activities(app)) == 5


def test_outlook_contacts_create_or_fill_crm_contacts(keyed_app: App, graph: FakeGraphServer, graph_mailbox) -> None:
    fill_graph(graph.mailbox(REP), week())
    graph_mailbox(folders="contacts")
    _sync(keyed_app)
    with keyed_app.sessions() as session:
        contacts = {c["name"]: c for c in export_contacts(session)}
        wile_phones = session.scalars(select(ContactPhone.e164).join(ContactPhone.contact)
                                      .where(ContactPhone.contact.has(name="Wile Coyote"))).all()  # fmt: skip
    assert contacts["Road Runner"]["account"] == "ACME" and contacts["Road Runner"]["source"] == "sync"
    assert "+12025550100" in wile_phones  # an existing contact matched by email gets the missing phone
    assert "Pal Private" not in contacts  # public mail domain: not created under account-domains


def test_an_unreadable_event_is_quarantined_and_the_rest_goes_on(keyed_app: App, graph: FakeGraphServer,
                                                                 graph_mailbox) -> None:  # fmt: skip
    box = graph.mailbox(REP)
    box.schedule("Rocket demo", NOW + timedelta(days=3), uid="demo@acme.example", attendees=WILE)
    broken = box.schedule("Broken", NOW + timedelta(days=4), attendees=WILE)
    box.edit_event(broken, start=None)
    graph_mailbox(folders="calendar")
    _sync(keyed_app)
    with keyed_app.sessions() as session:
        entries = session.scalars(select(QuarantineEntry)).all()
    assert [e.external_id for e in entries] == [broken] and "DTSTART" in entries[0].reason
    assert [a["ical_uid"] for a in _activities(keyed_app)] == ["demo@acme.example"]


def test_a_rotated_refresh_token_is_stored_encrypted(keyed_app: App, graph: FakeGraphServer, graph_mailbox) -> None:
    from sync_service.connectors import graph_auth

    graph.register_app("public-app", public=True)
    graph.identity.device_user = REP
    graph.mailbox(REP).deliver(message("d1@acme.example", "wile@acme.example", [REP], "Rockets"))
    secret = graph_auth.device_login(graph.source_url(REP, "public-app", auth="device"), out=io.StringIO())
    mailbox_id = graph_mailbox(secret=secret, client_id="public-app", auth="device", folders="inbox")
    graph.revoke_access_tokens()  # the next sync must redeem the refresh token
    _sync(keyed_app)
    with keyed_app.sessions() as session:
        stored = SecretBox(keyed_app.settings.secret_keys).decrypt(session.get_one(Mailbox, mailbox_id).secret)
    assert stored != secret and "RefreshToken" in stored
    graph.identity.refresh_tokens = {k: v for k, v in graph.identity.refresh_tokens.items() if k in stored}
    graph.revoke_access_tokens()  # only the newest refresh token is still valid: the stored one works
    graph.mailbox(REP).deliver(message("d2@acme.example", "wile@acme.example", [REP], "Rockets 2"))
    _sync(keyed_app)
    assert _count(keyed_app, Activity) == 2

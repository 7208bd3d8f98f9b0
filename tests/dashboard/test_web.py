"""The dashboard over HTTP (FastAPI's TestClient): login on every page and action, CSRF on every action,
the actions themselves, what the page shows and what it never shows."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import redis
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from crm_store.db import transaction
from crm_store.models import Activity, Mailbox, QuarantineEntry, RawItem, ReviewItem
from crm_store.models.sync import DONE
from sync_service.dashboard.app import api_routes, check_routes, create_app
from sync_service.dashboard.web import require_login
from sync_service.errors import ConfigError
from tests.dashboard.conftest import (
    MAILBOX_SECRET,
    METRICS_TOKEN,
    PASSWORD,
    TOKEN,
    Seeded,
    csrf_of,
    log_in,
    make_config,
    make_dead_letter,
)
from tests.support.builders import ics, vevent
from workers.broker import setup_broker
from workers.queues import redis_queue_stats


def _post_routes(client: TestClient) -> list[str]:
    """Every state-changing route of the app, with its path parameters filled in."""
    app: FastAPI = client.app  # type: ignore[assignment]
    paths = [r.path for r in api_routes(app.routes) if r.methods - {"GET", "HEAD"}]
    return [p.replace("{name}", "alice").replace("{action}", "pause").replace("{entry_id}", "1")
            .replace("{activity_id}", "1") for p in paths]  # fmt: skip


def _state(seeded: Seeded, name: str) -> str:
    with seeded.app.sessions() as session:
        return session.scalars(select(Mailbox.state).where(Mailbox.name == name)).one()


def test_every_page_needs_a_login(client: TestClient) -> None:
    for path in ("/", "/activities/1", "/?x=1"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/login?next=")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics").headers["www-authenticate"] == "Bearer"
    assert client.get("/healthz").text == "ok\n"  # tells nothing


def test_every_action_is_refused_without_a_login(client: TestClient, seeded: Seeded) -> None:
    anonymous = csrf_of(client.get("/login").text)  # a real token, but of a session that is not logged in
    routes = [p for p in _post_routes(client) if p != "/login"]
    assert {"/logout", "/mailboxes/alice/pause", "/mailboxes/alice/requeue-dead", "/queues/requeue-dead",
            "/quarantine/1/retry", "/review/1/assign"} <= set(routes)  # fmt: skip
    for path in routes:
        answer = client.post(path, data={"csrf_token": anonymous, "opportunity_id": "1"}, follow_redirects=False)
        assert answer.status_code == 403, path
        assert "Login required" in answer.text
    assert _state(seeded, "alice") == "idle"


def test_every_action_is_refused_without_the_csrf_token(client: TestClient, seeded: Seeded) -> None:
    log_in(client)
    for path in _post_routes(client):
        for data in ({}, {"csrf_token": ""}, {"csrf_token": "forged-token"}):
            answer = client.post(path, data={**data, "password": PASSWORD}, follow_redirects=False)
            assert answer.status_code == 403, (path, data)
            assert "Action refused" in answer.text
    assert _state(seeded, "alice") == "idle"
    assert client.get("/", follow_redirects=False).status_code == 200  # still logged in: /logout was refused too


def test_a_token_from_another_session_or_a_json_body_is_refused(client: TestClient, seeded: Seeded) -> None:
    other = TestClient(client.app, base_url="http://testserver")
    foreign = log_in(other)
    log_in(client)
    assert client.post("/mailboxes/alice/pause", data={"csrf_token": foreign}).status_code == 403
    token = csrf_of(client.get("/").text)
    as_json = client.post("/mailboxes/alice/pause", json={"csrf_token": token})
    assert as_json.status_code == 403
    assert _state(seeded, "alice") == "idle"


def test_login_with_the_password_or_the_token_sets_a_strict_http_only_cookie(client: TestClient) -> None:
    page = client.get("/login")
    wrong = client.post("/login", data={"csrf_token": csrf_of(page.text), "password": "nope"})
    assert wrong.status_code == 401 and "Wrong password or token" in wrong.text
    ok = client.post(
        "/login", data={"csrf_token": csrf_of(page.text), "password": TOKEN, "next": "/"}, follow_redirects=False
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    cookie = ok.headers["set-cookie"]
    assert cookie.startswith("crm_session=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain http here; see the https test
    assert client.get("/").status_code == 200


def test_cookies_are_secure_over_https(seeded: Seeded) -> None:
    with TestClient(create_app(seeded.app, make_config()), base_url="https://dashboard.example") as client:
        page = client.get("/login")
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("__Host-crm_session=") and "Secure" in cookie and "HttpOnly" in cookie
        assert "Strict-Transport-Security" in client.get("/healthz").headers
        log_in(client)
        assert client.get("/").status_code == 200


def test_login_issues_a_new_session_and_logout_revokes_it(client: TestClient) -> None:
    anonymous_cookie = client.get("/login").cookies["crm_session"]
    token = log_in(client)
    session_cookie = client.cookies["crm_session"]
    assert session_cookie != anonymous_cookie
    assert client.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    replay = TestClient(client.app, base_url="http://testserver", cookies={"crm_session": session_cookie})
    assert replay.get("/", follow_redirects=False).status_code == 303  # the stolen cookie is dead too


def test_a_tampered_cookie_is_not_a_session(client: TestClient) -> None:
    log_in(client)
    payload, mac = client.cookies["crm_session"].split(".")
    forged = TestClient(client.app, base_url="http://testserver", cookies={"crm_session": payload + "." + mac[::-1]})
    assert forged.get("/", follow_redirects=False).status_code == 303


def test_failed_logins_are_limited(client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)
    codes = [client.post("/login", data={"csrf_token": token, "password": "guess"}).status_code for _ in range(11)]
    assert codes[:10] == [401] * 10 and codes[10] == 429
    right = client.post("/login", data={"csrf_token": token, "password": PASSWORD})
    assert right.status_code == 429  # even the right password waits now


def test_login_only_redirects_within_the_site(client: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        visitor = TestClient(client.app, base_url="http://testserver")
        token = csrf_of(visitor.get("/login").text)
        answer = visitor.post(
            "/login", data={"csrf_token": token, "password": PASSWORD, "next": target}, follow_redirects=False
        )
        assert answer.headers["location"] == "/", target


def test_the_page_shows_mailbox_health_and_never_a_secret(client: TestClient, seeded: Seeded) -> None:
    log_in(client)
    page = client.get("/")
    assert page.status_code == 200
    html = page.text
    broken = re.search(r'<tr id="mailbox-broken".*?</tr>', html, re.S)
    assert broken and "Failed" in broken.group(0) and "not found at the source" in broken.group(0)
    assert "source path does not exist" in broken.group(0)  # the raw reason, under details
    assert 'class="alerts"' in html and "sync stopped" in html
    assert "imaps://bob@mail.example/?folders=INBOX" in html
    assert MAILBOX_SECRET not in html and PASSWORD not in html and TOKEN not in html
    assert "Rocket &lt;b&gt;specs&lt;/b&gt; &amp; prices" in html  # subjects are escaped
    assert "Which project is this?" in html and "Hammock lamps" in html and "Domes" in html  # the review queue
    assert "team.ics" in html and "not a readable iCalendar file" in html  # the quarantine
    assert "<svg" in html and html.count('class="bar"') == 28
    for header, value in (("x-frame-options", "DENY"), ("x-content-type-options", "nosniff"),
                          ("cache-control", "no-store")):  # fmt: skip
        assert page.headers[header] == value
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no scripts
    assert "<script" not in html


@pytest.mark.parametrize(("action", "state"), [("pause", "paused"), ("resync", "idle")])
def test_mailbox_actions(client: TestClient, seeded: Seeded, action: str, state: str) -> None:
    token = log_in(client)
    answer = client.post(f"/mailboxes/alice/{action}", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/#mailbox-alice"
    assert _state(seeded, "alice") == state
    page = client.get("/").text
    assert 'id="flash"' in page and "Mailbox alice" in page
    assert 'id="flash"' not in client.get("/").text  # shown once


def test_resume_clears_a_failed_mailbox(client: TestClient, seeded: Seeded) -> None:
    token = log_in(client)
    assert _state(seeded, "broken") == "failed"
    client.post("/mailboxes/broken/resume", data={"csrf_token": token})
    assert _state(seeded, "broken") == "idle"
    with seeded.app.sessions() as session:
        assert session.scalars(select(Mailbox.consecutive_failures).where(Mailbox.name == "broken")).one() == 0


def test_unknown_mailbox_or_action_is_a_message_not_a_crash(client: TestClient) -> None:
    token = log_in(client)
    page = client.post("/mailboxes/nobody/pause", data={"csrf_token": token}).text
    assert "no mailbox named &#39;nobody&#39;" in page
    page = client.post("/mailboxes/alice/remove", data={"csrf_token": token}).text
    assert "unknown mailbox action" in page


def test_requeue_needs_redis_mode(client: TestClient) -> None:
    token = log_in(client)
    page = client.post("/queues/requeue-dead", data={"csrf_token": token}).text
    assert "dead letters exist in Redis mode only" in page


def test_assigning_a_review_item(client: TestClient, seeded: Seeded) -> None:
    token = log_in(client)
    activity_id, domes = seeded.review_activity, seeded.ids["domes"]
    answer = client.post(f"/review/{activity_id}/assign", data={"csrf_token": token, "opportunity_id": str(domes)})
    assert f"Activity {activity_id} assigned to opportunity Domes." in answer.text
    with seeded.app.sessions() as session:
        activity = session.get_one(Activity, activity_id)
        assert activity.opportunity_id == domes and activity.opportunity_manual
        review = session.scalars(select(ReviewItem).where(ReviewItem.activity_id == activity_id)).one()
        assert review.resolved_at is not None
    assert "Nothing to review." in answer.text


def test_retrying_a_quarantined_item(client: TestClient, seeded: Seeded) -> None:
    token = log_in(client)
    entry = seeded.quarantine_id
    still = client.post(f"/quarantine/{entry}/retry", data={"csrf_token": token}).text
    assert "is still quarantined" in still
    with seeded.app.sessions() as session:
        assert session.get_one(QuarantineEntry, entry).retries == 1
    # The cause is fixed (here: the item's bytes replaced by a valid calendar); the next retry succeeds.
    good = ics(vevent("fixed-1", "Team sync", start=datetime(2026, 11, 3, 9, tzinfo=UTC)))
    with transaction(seeded.app.sessions) as session:
        raw = session.scalars(select(RawItem).where(RawItem.external_id == "team.ics")).one()
        raw.sha256 = seeded.app.blobs.put(good)
    done = client.post(f"/quarantine/{entry}/retry", data={"csrf_token": token}).text
    assert "processed: it left the quarantine" in done and "The quarantine is empty." in done
    with seeded.app.sessions() as session:
        assert session.scalars(select(RawItem.state).where(RawItem.external_id == "team.ics")).one() == DONE


def test_an_email_is_shown_only_after_sanitising(client: TestClient, seeded: Seeded) -> None:
    log_in(client)
    with seeded.app.sessions() as session:
        activity_id = session.scalars(select(Activity.id).where(Activity.subject.like("Rocket <b>%"))).one()
    html = client.get(f"/activities/{activity_id}").text
    body = html.split('id="email-html">', 1)[1].split("</div>\n", 1)[0]
    assert "Thrust: 9000 N" in body and "<b>Alice</b>" in body
    for bad in ("<script", "<img", "<iframe", "<style", "onclick", "onerror", "javascript:", "tracker.example"):
        assert bad not in body, bad
    assert 'href="https://acme.example/specs" rel="noopener noreferrer nofollow"' in body
    assert '<h1 class="subject">Rocket &lt;b&gt;specs&lt;/b&gt; &amp; prices</h1>' in html
    assert client.get("/activities/999999").status_code == 404


def test_metrics_need_a_token_or_a_session(client: TestClient) -> None:
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    for token in (METRICS_TOKEN, TOKEN):
        answer = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    assert 'crm_sync_mailbox_state{mailbox="broken",state="failed"} 1' in text
    assert 'crm_sync_mailbox_alert{mailbox="broken",kind="failing"} 1' in text
    assert 'crm_sync_mailbox_consecutive_failures{mailbox="broken"} 1' in text
    assert 'crm_sync_queue_messages{queue="sync",state="dead_lettered"} 0' in text
    assert "crm_sync_review_items 1" in text and "crm_sync_items_quarantined 1" in text
    log_in(client)
    assert client.get("/metrics").status_code == 200


def test_an_app_with_an_unprotected_action_is_refused(seeded: Seeded) -> None:
    api = create_app(seeded.app, make_config())

    @api.post("/oops", dependencies=[Depends(require_login)])
    def oops() -> None: ...

    with pytest.raises(RuntimeError, match="/oops changes state without the CSRF check"):
        check_routes(api)


def test_no_dashboard_without_a_login_configured(seeded: Seeded) -> None:
    with pytest.raises(ConfigError, match="CRM_ADMIN_PASSWORD_HASH"):
        create_app(seeded.app, make_config(password_hash=None, token=None))


def test_in_redis_mode_the_workers_get_the_follow_up_work(seeded: Seeded, redis_url: str) -> None:
    seeded.app.settings = replace(seeded.app.settings, broker_url=redis_url)
    make_dead_letter(seeded.app, "broken")
    with TestClient(create_app(seeded.app, make_config()), base_url="http://testserver") as client:
        token = log_in(client)
        page = client.get("/").text
        assert "sync_mailbox</span> · mailbox broken" in page  # the dead letter, named
        assert (
            "Mailbox broken resumed; a sync is queued."
            in client.post("/mailboxes/broken/resume", data={"csrf_token": token}).text
        )
        retried = client.post(f"/quarantine/{seeded.quarantine_id}/retry", data={"csrf_token": token}).text
        assert "queued for processing again" in retried
        requeued = client.post("/queues/requeue-dead", data={"csrf_token": token}).text
        assert "Requeued 1 dead-lettered message on their queues." in requeued
    client_redis = redis.Redis.from_url(redis_url)
    try:
        stats = redis_queue_stats(client_redis)
    finally:
        client_redis.close()
    assert stats["sync"] == {"ready": 2, "in_flight": 0, "delayed": 0, "dead_lettered": 0}
    assert stats["process"]["ready"] == 1
    with seeded.app.sessions() as session:
        raw = session.scalars(select(RawItem).where(RawItem.external_id == "team.ics")).one()
        assert raw.state == "pending"  # the workers will process it


def _dead_complete_due(seeded: Seeded) -> None:
    """A dead letter about no mailbox (``complete_due``)."""
    runtime = setup_broker(seeded.app.settings, app=seeded.app)
    try:
        runtime.send("complete_due")
        fetched = runtime.broker.do_fetch("maintenance", 1)  # type: ignore[attr-defined]
        runtime.broker.do_nack("maintenance", json.loads(fetched[0])["options"]["redis_message_id"])  # type: ignore[attr-defined]
    finally:
        runtime.close()


def _row(html: str, name: str) -> str:
    found = re.search(rf'<tr id="mailbox-{name}".*?</tr>', html, re.S)
    assert found, name
    return found.group(0)


def test_a_mailboxs_dead_letters_are_counted_and_requeued_from_its_row(seeded: Seeded, redis_url: str) -> None:
    seeded.app.settings = replace(seeded.app.settings, broker_url=redis_url)
    for name in ("broken", "broken", "alice"):
        make_dead_letter(seeded.app, name)
    _dead_complete_due(seeded)
    with TestClient(create_app(seeded.app, make_config()), base_url="http://testserver") as client:
        token = log_in(client)
        html = client.get("/").text
        assert re.search(r'class="num dead-letters bad">2<', _row(html, "broken"))
        assert re.search(r'class="num dead-letters bad">1<', _row(html, "alice"))
        assert re.search(r'class="num dead-letters ">0<', _row(html, "bob"))
        assert 'action="/mailboxes/broken/requeue-dead"' in _row(html, "broken")
        assert "requeue-dead" not in _row(html, "bob")  # no dead letters, no button
        for data in ({}, {"csrf_token": "forged-token"}):
            refused = client.post("/mailboxes/broken/requeue-dead", data=data, follow_redirects=False)
            assert refused.status_code == 403 and "Action refused" in refused.text
        with redis.Redis.from_url(redis_url) as r:
            assert redis_queue_stats(r)["sync"]["dead_lettered"] == 3  # the refused POSTs moved nothing
        answer = client.post("/mailboxes/broken/requeue-dead", data={"csrf_token": token}, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/#mailbox-broken"
        html = client.get("/").text
        assert "Requeued 2 dead-lettered messages of mailbox broken." in html
        assert "requeue-dead" not in _row(html, "broken") and "requeue-dead" in _row(html, "alice")
        unknown = client.post("/mailboxes/nobody/requeue-dead", data={"csrf_token": token}).text
        assert "no mailbox named &#39;nobody&#39;" in unknown
    with redis.Redis.from_url(redis_url) as r:
        stats = redis_queue_stats(r)
    assert (stats["sync"]["ready"], stats["sync"]["dead_lettered"]) == (2, 1)  # alice's stays dead
    assert stats["maintenance"]["dead_lettered"] == 1  # about no mailbox: stays


def test_a_mailboxs_requeue_needs_redis_mode(client: TestClient) -> None:
    token = log_in(client)
    page = client.post("/mailboxes/broken/requeue-dead", data={"csrf_token": token}).text
    assert "dead letters exist in Redis mode only" in page


def test_an_email_whose_stored_bytes_are_gone_still_shows_its_activity(client: TestClient, seeded: Seeded) -> None:
    from crm_store.models import SyncedItem
    from tests.support.blobs import lose_blob

    log_in(client)
    with seeded.app.sessions() as session:
        activity = session.scalars(select(Activity).where(Activity.subject.like("Rocket <b>%"))).one()
        item = session.get_one(SyncedItem, activity.item_id)
        activity_id, sha = activity.id, item.sha256
    assert sha is not None
    lose_blob(seeded.app, sha)
    page = client.get(f"/activities/{activity_id}")
    assert page.status_code == 200 and "Rocket &lt;b&gt;specs&lt;/b&gt; &amp; prices" in page.text
    assert 'id="email-html"' not in page.text

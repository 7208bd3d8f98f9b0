"""End to end: an admin uses the dashboard in headless Chromium, against uvicorn, a database and a real Redis.

Logs in, sees the failing mailbox and why, pauses and resumes a mailbox, requeues dead letters (one mailbox's,
then a queue's), assigns a review item with one click, reads a sanitised HTML email, and is refused an action
without a CSRF token.
Screenshots go to ``tests/_artifacts/`` (gitignored).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import select

from crm_store.models import Activity, Mailbox, ReviewItem
from sync_service.bootstrap import App
from sync_service.dashboard.app import create_app
from tests.dashboard.conftest import MAILBOX_SECRET, PASSWORD, make_config, make_dead_letter, seed_dashboard
from tests.support.browser import Browser, find_chromium
from tests.support.servers import free_port, missing, wait_for_port
from workers.broker import setup_broker
from workers.queues import redis_queue_stats

ARTIFACTS = Path(__file__).resolve().parents[1] / "_artifacts"


@pytest.fixture
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        missing("chromium (Debian package chromium)")
    assert binary is not None
    return binary


@pytest.fixture
def served(app: App, database_url: str, tmp_path: Path, redis_url: str) -> Iterator[tuple[str, App]]:
    """The seeded dashboard in Redis mode, served by uvicorn on 127.0.0.1."""
    if not database_url.startswith("sqlite"):
        pytest.skip("the browser test runs once, on SQLite; the unit tests cover both databases")
    seed_dashboard(app, tmp_path)
    app.settings = replace(app.settings, broker_url=redis_url)
    make_dead_letter(app, "broken")
    make_dead_letter(app, "alice")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(app, make_config()), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port(port)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _state(app: App, name: str) -> str:
    with app.sessions() as session:
        return session.scalars(select(Mailbox.state).where(Mailbox.name == name)).one()


def _redis_numbers(app: App) -> dict[str, int]:
    runtime = setup_broker(app.settings, app=app)
    try:
        assert runtime.redis is not None
        return redis_queue_stats(runtime.redis)["sync"]
    finally:
        runtime.close()


@pytest.fixture
def browser(chromium: str) -> Iterator[Browser]:
    opened = Browser(chromium)
    try:
        yield opened
    finally:
        opened.close()


def test_an_admin_fixes_things_from_the_dashboard(served: tuple[str, App], browser: Browser) -> None:
    base, app = served

    # Every page needs a login: the dashboard sends us to the form.
    browser.goto(base + "/")
    assert browser.evaluate("location.pathname") == "/login"
    browser.type("#password", "wrong password")
    browser.click_and_wait("#login-button")
    assert "Wrong password or token" in browser.text()
    browser.type("#password", PASSWORD)
    browser.click_and_wait("#login-button")
    assert browser.evaluate("location.pathname") == "/"

    # The failing mailbox is flagged, with its reason in plain words and the raw error beside it.
    broken = browser.text("#mailbox-broken")
    assert "Failed" in broken and "not found at the source" in broken
    assert "broken" in browser.text("#alerts") and "failing" in browser.text("#alerts")
    assert browser.text("#queue-sync td.bad") == "2"  # the dead letters, one per mailbox
    assert browser.text("#mailbox-broken td.dead-letters") == "1"
    assert MAILBOX_SECRET not in browser.evaluate("document.documentElement.outerHTML")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.screenshot(ARTIFACTS / "dashboard.png")

    # Pause, then resume a mailbox.
    browser.click_and_wait('#mailbox-alice form[action$="/pause"] button')
    assert browser.text("#flash") == "Mailbox alice paused."
    assert _state(app, "alice") == "paused" and "Paused" in browser.text("#mailbox-alice")
    browser.click_and_wait('#mailbox-alice form[action$="/resume"] button')
    assert browser.text("#flash") == "Mailbox alice resumed; a sync is queued."
    assert _state(app, "alice") == "idle"

    # Requeue broken's dead letter from its row, then the rest from the queue's.
    ready_before = _redis_numbers(app)["ready"]
    browser.click_and_wait('#mailbox-broken form[action$="/requeue-dead"] button')
    assert browser.text("#flash") == "Requeued 1 dead-lettered message of mailbox broken."
    assert browser.text("#mailbox-broken td.dead-letters") == "0"
    assert _redis_numbers(app)["dead_lettered"] == 1 and _redis_numbers(app)["ready"] == ready_before + 1
    ready_before += 1
    browser.click_and_wait("#queue-sync form button")
    assert browser.text("#flash") == "Requeued 1 dead-lettered message on the sync queue."
    numbers = _redis_numbers(app)
    assert numbers["dead_lettered"] == 0 and numbers["ready"] == ready_before + 1

    # Assign the review item to an opportunity with one click.
    with app.sessions() as session:
        review = session.scalars(select(ReviewItem).where(ReviewItem.resolved_at.is_(None))).one()
    chosen = browser.evaluate(f"document.querySelector('#review-{review.activity_id} button').innerText")
    browser.click_and_wait(f"#review-{review.activity_id} button")
    assert browser.text("#flash") == f"Activity {review.activity_id} assigned to opportunity {chosen}."
    assert "Nothing to review" in browser.text("#review")
    with app.sessions() as session:
        activity = session.get_one(Activity, review.activity_id)
        assert activity.opportunity is not None and activity.opportunity.title == chosen
        assert activity.opportunity_manual
    browser.screenshot(ARTIFACTS / "dashboard-after-actions.png")

    # An email's HTML is shown only after sanitising: no script, image, frame or event handler survives.
    link = browser.evaluate(
        "[...document.querySelectorAll('#activity a')].find(a => a.innerText.startsWith('Rocket <b>')).href"
    )
    browser.goto(link)
    assert browser.text("h1") == "Rocket <b>specs</b> & prices"  # the subject as text, not markup
    assert "Thrust: 9000 N" in browser.text("#email-html")
    dangerous = "#email-html script, #email-html img, #email-html iframe, #email-html style, [onclick], [onerror]"
    assert browser.evaluate(f"document.querySelectorAll({json.dumps(dangerous)}).length") == 0
    assert browser.evaluate("[...document.querySelectorAll('#email-html a')].map(a => a.getAttribute('href'))") == [
        None,
        "https://acme.example/specs",
    ]
    browser.screenshot(ARTIFACTS / "activity.png")

    # A forged form without the CSRF token is refused, and changes nothing.
    browser.goto(base + "/")
    browser.evaluate(
        "(() => { const f = document.createElement('form'); f.method = 'post'; f.action = '/mailboxes/alice/pause';"
        " document.body.appendChild(f); })()"
    )
    mark = browser.mark()
    browser.evaluate("document.querySelector('body > form:last-of-type').submit()")
    browser.wait_event("Page.loadEventFired", mark)
    assert "Action refused" in browser.text("h1")
    assert _state(app, "alice") == "idle"

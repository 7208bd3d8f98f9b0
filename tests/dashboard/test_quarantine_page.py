"""The dashboard's quarantine section over HTTP: it lists the latest entries and says how many there are in
all when it cannot list them all (after an incident, thousands), pointing to the bulk retry."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from crm_store.db import transaction
from crm_store.models import Mailbox, QuarantineEntry
from tests.dashboard.conftest import Seeded, log_in


def _section(html: str) -> str:
    found = re.search(r'<section class="card" id="quarantine">.*?</section>', html, re.S)
    assert found, "no quarantine section"
    return found.group(0)


def _quarantine(seeded: Seeded, count: int) -> None:
    """``count`` more entries in alice's quarantine (a schema mismatch during a sync, say)."""
    with transaction(seeded.app.sessions) as session:
        alice = session.scalars(select(Mailbox.id).where(Mailbox.name == "alice")).one()
        session.add_all(
            QuarantineEntry(mailbox_id=alice, folder="INBOX", external_id=f"incident-{n}", reason="internal error")
            for n in range(count)
        )


def test_the_section_says_how_many_it_shows_of_how_many(client: TestClient, seeded: Seeded) -> None:
    log_in(client)
    section = _section(client.get("/").text)
    assert "team.ics" in section and "showing the latest" not in section  # one entry, listed: nothing to count

    _quarantine(seeded, 49)
    section = _section(client.get("/").text)
    assert section.count('<tr id="quarantine-') == 50 and "showing the latest" not in section  # all listed

    _quarantine(seeded, 1_151)
    section = _section(client.get("/").text)
    assert section.count('<tr id="quarantine-') == 50
    assert "showing the latest 50 of 1,201" in section
    assert "crm-sync quarantine retry --all" in section


def test_retry_all_retries_every_entry_in_one_run_behind_the_csrf_check(client: TestClient, seeded: Seeded) -> None:
    token = log_in(client)
    assert "quarantine-retry-all" not in _section(client.get("/").text)  # one entry: its own Retry is enough
    refused = client.post("/quarantine/retry-all", data={}, follow_redirects=False)
    assert refused.status_code == 403
    answer = client.post("/quarantine/retry-all", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/#quarantine"
    page = client.get("/").text
    flash = re.search(r'id="flash">([^<]*)<', page)
    assert flash and flash.group(1) == "Retried: 0 of 1 left the quarantine. 1 in the quarantine now."  # still broken
    _quarantine(seeded, 60)  # more than the page lists: the button is there
    assert "quarantine-retry-all" in _section(client.get("/").text)


def test_an_entry_at_the_top_of_a_local_folder_shows_without_a_dot(client: TestClient, seeded: Seeded) -> None:
    # A Maildir's own new/ and cur/ files are in folder "." (the folder's root): shown as their bare name.
    with transaction(seeded.app.sessions) as session:
        alice = session.scalars(select(Mailbox.id).where(Mailbox.name == "alice")).one()
        session.add(QuarantineEntry(mailbox_id=alice, folder=".", external_id="999.malformed", reason="bad MIME"))
        session.add(QuarantineEntry(mailbox_id=alice, folder="Sent", external_id="1000.sent", reason="bad MIME"))
    log_in(client)
    section = _section(client.get("/").text)
    assert ">999.malformed</td>" in section and "./999.malformed" not in section
    assert ">Sent/1000.sent</td>" in section

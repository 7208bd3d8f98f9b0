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

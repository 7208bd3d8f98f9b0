"""Parsing ahead in helper processes (``pipeline.preparse``): the helpers' results are used, the outcome is
the same as parsing in the processing run itself, and a helper that dies loses nothing."""

from __future__ import annotations

import os
import re
import signal
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select

from crm_store.blobs import BlobStore
from crm_store.models import Contact, Mailbox, RawItem
from sync_service.bootstrap import App
from sync_service.connectors.registry import open_connector
from sync_service.exports import export_activities, export_quarantine
from sync_service.matching.model import CandidateIndex
from sync_service.parsing.ical import parse_calendar
from sync_service.parsing.mime import parse_body, parse_headers
from sync_service.parsing.vcard import parse_vcards
from sync_service.pipeline import emails, preparse
from sync_service.pipeline.fetch import sync_folder
from sync_service.pipeline.handover import Handover
from sync_service.pipeline.preparse import ParseAhead, Parsed, ParseOptions, parse_item, parse_many
from sync_service.pipeline.process import process_pending
from sync_service.values import SyncWindow
from tests.support.builders import REP, ics, maildir, message, vevent

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
START = datetime(2026, 11, 2, 9, tzinfo=UTC)
WINDOW = SyncWindow.around(NOW, 90, 180)
OPTIONS = ParseOptions(WINDOW, 1000, 25 * 1024 * 1024)
VCARD = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Road Runner\r\nEMAIL:road@acme.example\r\nORG:ACME\r\nEND:VCARD\r\n"
DAMAGED = b"Subject: nothing else\r\n\r\n"


def _invite(mid: str, uid: str, summary: str, at: datetime, method: str, sequence: int) -> bytes:
    event = vevent(uid, summary, at + timedelta(days=1), attendees=(REP,), organizer="wile@acme.example",
                   extra=(f"SEQUENCE:{sequence}",))  # fmt: skip
    return message(mid, "wile@acme.example", [REP], f"Invitation: {summary}", at=at,
                   attachment=("invite.ics", ics(event, method=method), "text/calendar"))  # fmt: skip


def _mailbox(tmp_path: Path) -> Path:
    mails = [
        message(
            f"m{i}@acme.example",
            "wile@acme.example",
            [REP],
            f"Specs {i}",
            at=START + timedelta(hours=i),
            attachment=(f"s{i}.pdf", b"%PDF", "application/pdf"),
        )
        for i in range(9)
    ]
    mails += [
        _invite("i1@acme.example", "evt-review", "Rocket review", START + timedelta(hours=2), "REQUEST", 0),
        _invite("i2@acme.example", "evt-review", "Rocket review (moved)", START + timedelta(hours=7), "REQUEST", 1),
        _invite("i3@acme.example", "evt-demo", "Demo", START + timedelta(hours=3), "REQUEST", 0),
        _invite("i4@acme.example", "evt-demo", "Demo", START + timedelta(hours=8), "CANCEL", 1),
        message("news@acme.example", "news@acme.example", [REP], "ACME news", headers={"List-Id": "<news.acme>"}),
        message("x@stranger.example", "someone@stranger.example", [REP], "Hello from nowhere"),
    ]
    box = maildir(tmp_path / "alice", mails)
    (box / "new" / "9.damaged").write_bytes(DAMAGED)
    (box / "calendar.ics").write_bytes(ics(vevent("evt-call", "Call with Wile", START + timedelta(days=3),
                                                  attendees=("wile@acme.example",))))  # fmt: skip
    (box / "contacts.vcf").write_bytes(VCARD)
    return box


def _fetch(app: App, add_mailbox, box: Path) -> None:  # type: ignore[no-untyped-def]
    add_mailbox("alice", box)
    with app.sessions() as session:
        mailbox_id = session.scalars(select(Mailbox.id)).one()
    sync_folder(app, mailbox_id, open_connector(f"maildir://{box}"), ".")


@pytest.mark.parametrize("processes", [0, 1])
def test_the_outcome_is_the_same_with_and_without_parsing_ahead(
    app, crm, add_mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: int
) -> None:
    app.settings = replace(app.settings, batch_size=4)
    _fetch(app, add_mailbox, _mailbox(tmp_path))
    local = Counter[str]()
    real_body = emails.parse_body

    def counted_body(data: bytes, **kwargs: int) -> object:
        local["body"] += 1
        return real_body(data, **kwargs)

    monkeypatch.setattr(emails, "parse_body", counted_body)  # the helpers are other processes: not counted
    monkeypatch.setattr(preparse, "parse_body", counted_body)  # invitations parsed first in the run (events)
    stats = process_pending(app, now=NOW, parse_processes=processes)
    assert (stats.logged, stats.quarantined, stats.contacts_created) == (12, 1, 1)
    assert stats.skipped == {"automated": 1, "unmatched": 1}
    with app.sessions() as session:
        acts = {a["subject"]: a for a in export_activities(session)}
        [entry] = export_quarantine(session)
        states = Counter(session.scalars(select(RawItem.state)))
        contacts = sorted(session.scalars(select(Contact.name)))
    assert sorted(acts) == sorted(
        [f"Specs {i}" for i in range(9)] + ["Rocket review (moved)", "Demo", "Call with Wile"]
    )
    assert acts["Rocket review (moved)"]["start"].startswith("2026-11-03T16:00")
    assert acts["Demo"]["status"] == "cancelled"
    assert all(sorted(acts[f"Specs {i}"]["documents"]) == [f"Specs {i}.eml", f"s{i}.pdf"] for i in range(9))
    assert {acts[f"Specs {i}"]["opportunity"] for i in range(9)} == {"Rockets"}
    assert entry["reason"] == "no sender and no recipient could be read from the headers (damaged message?)"
    assert states == {"done": 17, "quarantined": 1}
    assert "Road Runner" in contacts
    # 18 items in batches of 4. With a helper, only the first batch's bodies are decoded here; the other
    # batches come parsed (the invitations' bodies too).
    if processes:
        assert 0 < local["body"] <= 4
    else:
        assert local["body"] >= 9 + 4


def test_parse_item_gives_what_the_parsers_give() -> None:
    mail = _invite("i1@acme.example", "evt-review", "Rocket review", START, "REQUEST", 0)
    parsed = parse_item("message", mail, OPTIONS)
    body = parse_body(mail)
    assert parsed.headers == parse_headers(mail)
    assert parsed.body == body
    assert parsed.calendars == tuple(parse_calendar(part, WINDOW) for part in body.calendar_parts)
    calendar = ics(vevent("evt-call", "Call", START))
    assert parse_item("calendar", calendar, OPTIONS).calendar == parse_calendar(calendar, WINDOW)
    assert parse_item("contacts", VCARD, OPTIONS).cards == parse_vcards(VCARD)


def test_what_fails_to_parse_is_left_for_the_processing_to_report() -> None:
    # The processing parses these again and quarantines them with their own error.
    assert parse_item("calendar", b"BEGIN:VCALENDAR\r\nnonsense", OPTIONS) == Parsed()
    assert parse_item("contacts", b"no card here", OPTIONS) == Parsed()
    assert parse_item("something else", b"x", OPTIONS) == Parsed()


def test_a_helper_that_dies_leaves_the_parsing_to_the_run() -> None:
    mail = message("a@acme.example", "wile@acme.example", [REP], "Specs")
    ahead = ParseAhead(1, OPTIONS)
    try:
        ahead.submit([("message", "sha-a", REP, mail)])
        ahead.submit([("message", "sha-b", REP, mail)])
        assert ahead.waiting == 2
        blobs, parsed = ahead.take()  # the oldest batch first
        assert blobs == {"sha-a": mail} and parsed[("message", "sha-a")].headers == parse_headers(mail)
        assert ahead.take()[1][("message", "sha-b")].headers == parse_headers(mail)
        assert ahead.take() == ({}, {}) and ahead.waiting == 0
        for pid in list(ahead._pool._processes):  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)
        ahead.submit([("message", "sha-c", REP, mail)])
        assert ahead.take() == ({"sha-c": mail}, {})
        assert ahead.broken
        ahead.submit([("message", "sha-d", REP, mail)])  # no more work is handed to a broken pool
        assert ahead.take() == ({"sha-d": mail}, {})
    finally:
        ahead.close()


def test_the_body_of_automated_mail_is_not_decoded_ahead() -> None:
    # Bulk and automated mail is never logged (SPEC §3): its body is not needed, unless it is an invitation.
    news = message("n@acme.example", "news@acme.example", [REP], "News", headers={"List-Unsubscribe": "<x>"})
    parsed = parse_item("message", news, OPTIONS)
    assert parsed.headers == parse_headers(news) and parsed.headers.automated_reason
    assert parsed.body is None
    invite = _invite("i@acme.example", "evt-x", "Review", START, "REQUEST", 0).replace(
        b"Subject:", b"Auto-Submitted: auto-generated\nSubject:"
    )
    assert parse_item("message", invite, OPTIONS).calendars


@pytest.mark.parametrize("processes", [0, 1])
def test_a_stored_meeting_is_updated_by_an_invitation_parsed_ahead(
    app, crm, add_mailbox, tmp_path: Path, caplog: pytest.LogCaptureFixture, processes: int
) -> None:
    # The event items a batch's invitations name are looked up in one query up front (``BatchCache.events``):
    # an event stored by an earlier run is found there and updated, not made twice.
    app.settings = replace(app.settings, batch_size=2)
    first = _invite("u1@acme.example", "evt-plan", "Plan", START, "REQUEST", 0)
    box = maildir(tmp_path / "alice", [first])
    _fetch(app, add_mailbox, box)
    assert process_pending(app, now=NOW, parse_processes=1).logged == 1
    moved = _invite("u2@acme.example", "evt-plan", "Plan (moved)", START + timedelta(hours=30), "REQUEST", 1)
    fillers = [message(f"f{i}@acme.example", "wile@acme.example", [REP], f"Filler {i}") for i in range(4)]
    maildir(box, [*fillers, moved])
    with app.sessions() as session:
        mailbox_id = session.scalars(select(Mailbox.id)).one()
    sync_folder(app, mailbox_id, open_connector(f"maildir://{box}"), ".")
    caplog.set_level("INFO", logger="sync_service.pipeline.process")
    lookups: list[str] = []

    def seen(conn, cursor, statement, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        flat = " ".join(statement.split())
        if re.search(r"WHERE (activities|item_sources)\.item_id = (\?|\$1\b)", flat):  # one item's, not a batch's
            lookups.append(flat)

    event.listen(app.engine, "before_cursor_execute", seen)
    stats = process_pending(app, now=NOW, parse_processes=processes)
    event.remove(app.engine, "before_cursor_execute", seen)
    assert (stats.logged, stats.updated) == (4, 1)
    assert "collided" not in caplog.text and "item by item" not in caplog.text  # no second item was made
    # Parsed ahead (or, without a helper, first in the batch), the stored meeting's activity and sources came
    # with the batch: no lookup of its own.
    assert lookups == []
    with app.sessions() as session:
        meetings = [a for a in export_activities(session) if a["type"] == "meeting"]
    assert [(m["subject"], m["start"][:16]) for m in meetings] == [("Plan (moved)", "2026-11-04T15:00")]


def test_the_run_reads_no_stored_bytes_of_what_was_parsed_ahead_whole(
    app, crm, add_mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The parser process reads the bytes it parses from where they are stored; the run reads only those of
    # the first batch, which it parses itself (the damaged message is quarantined from its parsed headers).
    app.settings = replace(app.settings, batch_size=4)
    _fetch(app, add_mailbox, _mailbox(tmp_path))
    with app.sessions() as session:
        stored = len(session.scalars(select(RawItem.id)).all())
    read: list[str] = []
    real = BlobStore.get_many

    def counted(store: BlobStore, digests: Iterable[str]) -> dict[str, bytes]:
        found = real(store, digests)
        read.extend(found)
        return found

    monkeypatch.setattr(BlobStore, "get_many", counted)
    stats = process_pending(app, now=NOW, parse_processes=1)
    assert (stats.logged, stats.quarantined) == (12, 1)
    assert stored == 18 and len(read) == 4, read
    read.clear()
    again = process_pending(app, now=NOW, parse_processes=0)  # nothing left: nothing read
    assert again.logged == 0 and read == []


def test_the_run_decodes_a_body_the_helpers_thought_it_would_not_need(
    app, crm, add_mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The helpers decide with a copy of the index made when the run starts. Give them an empty one: every email
    # looks unmatched to them, so they decode no body, and the run decodes the ones it logs itself.
    app.settings = replace(app.settings, batch_size=4)
    _fetch(app, add_mailbox, _mailbox(tmp_path))
    real = Handover.start

    def start(app: App, now: datetime, processes: int, index: CandidateIndex, *rest: object) -> Handover | None:
        return real(app, now, processes, CandidateIndex(), *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(Handover, "start", start)
    stats = process_pending(app, now=NOW, parse_processes=1)
    assert (stats.logged, stats.quarantined) == (12, 1)
    with app.sessions() as session:
        acts = {a["subject"]: a for a in export_activities(session)}
    assert all(sorted(acts[f"Specs {i}"]["documents"]) == [f"Specs {i}.eml", f"s{i}.pdf"] for i in range(9))


def test_only_the_bodies_of_emails_that_would_be_logged_are_decoded_ahead() -> None:
    index = CandidateIndex(
        internal_domains=frozenset({"northwind-sales.example"}),
        contacts_by_email={"wile@acme.example": (1,)},
        contact_account={1: None},
    )
    options = replace(OPTIONS, index=index)
    known = message("k@acme.example", "wile@acme.example", [REP], "Specs", attachment=("s.pdf", b"%", "x/pdf"))
    stranger = message("s@stranger.example", "someone@stranger.example", [REP], "Hello")
    internal = message("i@northwind-sales.example", REP, ["bob@northwind-sales.example"], "Lunch?")
    assert parse_item("message", known, options, REP).body == parse_body(known)
    assert parse_item("message", stranger, options, REP) == Parsed(headers=parse_headers(stranger), size=len(stranger))
    assert parse_item("message", internal, options, REP) == Parsed(headers=parse_headers(internal), size=len(internal))
    # without an index only bulk and automated mail is left undecoded
    assert parse_item("message", stranger, OPTIONS, REP).body == parse_body(stranger)


@pytest.mark.parametrize("asked", [None, 1])
def test_run_once_starts_parser_processes_only_when_asked(
    app, crm, add_mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, asked: int | None
) -> None:
    # Library callers get none by default (a spawned helper imports the caller's main module again);
    # `crm-sync sync` asks for them (``parse_processes_for_command``).
    from sync_service.pipeline.runner import run_once

    monkeypatch.delenv("CRM_PARSE_PROCESSES", raising=False)
    app.settings = replace(app.settings, batch_size=4)
    add_mailbox("alice", _mailbox(tmp_path))
    local = Counter[str]()
    real_body = emails.parse_body

    def counted_body(data: bytes, **kwargs: int) -> object:
        local["body"] += 1
        return real_body(data, **kwargs)

    monkeypatch.setattr(emails, "parse_body", counted_body)
    monkeypatch.setattr(preparse, "parse_body", counted_body)  # invitations parsed first in the run (events)
    report = run_once(app, now=NOW, parse_processes=asked)
    assert (report.stats.logged, report.stats.quarantined) == (12, 1)
    assert (local["body"] <= 4) if asked else (local["body"] >= 9 + 4)


HELPER_PARENT = """
import sys, time
from datetime import UTC, datetime
from sync_service.pipeline.preparse import ParseAhead, ParseOptions
from sync_service.values import SyncWindow

if __name__ == "__main__":
    ahead = ParseAhead(1, ParseOptions(SyncWindow.around(datetime.now(UTC), 90, 180), 1000, 1 << 20))
    ahead.submit([("message", "sha", "", b"Subject: hi\\r\\n\\r\\nbody")])
    ahead.take()
    print(" ".join(str(p) for p in ahead._pool._processes), flush=True)
    time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_helper_leaves_when_its_parent_is_killed(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(HELPER_PARENT)
    root = str(Path(__file__).resolve().parents[2])  # this checkout's code, whatever is installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert parent.stdout is not None
        helpers = [int(p) for p in parent.stdout.readline().split()]
        assert helpers and all(_alive(p) for p in helpers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in helpers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in helpers), "the helper outlived its killed parent"
    finally:
        parent.kill()


STDIN_PARENT = """
import sys
from datetime import UTC, datetime
from sync_service.matching.model import CandidateIndex
from sync_service.pipeline.preparse import ParseAhead, ParseOptions
from sync_service.values import SyncWindow

# A CRM of 20,000 contacts: the helpers' options are far larger than a pipe's buffer.
index = CandidateIndex(contacts_by_email={f"person{i}@customer{i % 400}.example": (i,) for i in range(20000)})
options = ParseOptions(SyncWindow.around(datetime.now(UTC), 90, 180), 1000, 1 << 20, index)
ahead = ParseAhead(1, options, spool=sys.argv[1])
ahead.submit([("message", "sha", "", b"Subject: hi\\r\\n\\r\\nbody")])
blobs, parsed = ahead.take()
ahead.close()
print("broken" if ahead.broken else "parsed", sorted(blobs), len(parsed), flush=True)
"""


def test_a_helper_that_cannot_start_leaves_the_run_parsing_alone(tmp_path: Path) -> None:
    """A script read from standard input cannot be imported again by a spawned helper, which dies at once.
    The run must notice and go on by itself — not wait forever to hand the helper its options."""
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-", str(tmp_path)],
        input=STDIN_PARENT,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["broken", "['sha']", "0"]
    assert "parsing ahead stopped" in done.stderr
    assert not list(tmp_path.glob(".parse-options-*"))  # the options file is removed at close


def test_a_helper_leaves_out_what_it_cannot_read_from_the_store(tmp_path: Path) -> None:
    # Bytes handed over by location are read and checked in the helper: a vanished file or a damaged slice
    # gives no result (the run then reads the item itself and quarantines it if the bytes are missing).
    from crm_store.blobs import Located, sha256_hex

    good, other = message("g@acme.example", "wile@acme.example", [REP], "Good"), b"Subject: x\r\n\r\ny"
    pack = tmp_path / "one.pack"
    pack.write_bytes(good + other)
    digest, damaged = sha256_hex(good), sha256_hex(other + b"!")
    parsed = parse_many(
        [
            ("message", digest, REP, Located(str(pack), 0, len(good))),
            ("message", damaged, REP, Located(str(pack), len(good), len(other))),  # hashes differently
            ("message", "f" * 64, REP, Located(str(tmp_path / "gone.pack"), 0, 10)),
            ("message", "given", REP, other),
        ],
        OPTIONS,
    )
    assert sorted(parsed) == [("message", digest), ("message", "given")]
    assert parsed[("message", digest)] == parse_item("message", good, OPTIONS, REP)

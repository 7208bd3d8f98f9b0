"""`crm-sync mailbox source` (audit 17b F3), one source for one mailbox (F10), and `mailbox remove`'s count of the
meetings it cancelled (F4), through the command line."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from crm_store.secrets import SecretBox
from sync_service.dashboard.wording import plain_error
from sync_service.source_identity import same_source
from tests.support.builders import REP, REP2, ics, maildir, message, vevent

ACCOUNTS = "Name,Type,Domains,Territory,Owner\nACME,customer,acme.example,West,{rep}\n"
CONTACTS = "First Name,Last Name,Company,E-mail Address\nWile,Coyote,ACME,wile@acme.example\n"
WILE = "wile@acme.example"


@pytest.fixture
def ready(cli, tmp_path: Path):  # type: ignore[no-untyped-def]
    assert cli("init").code == 0
    for kind, body in (("accounts", ACCOUNTS), ("contacts", CONTACTS)):
        path = tmp_path / f"{kind}.csv"
        path.write_text(body.format(rep=REP), encoding="utf-8")
        assert cli("import", kind, str(path)).code == 0
    return cli


def _box(path: Path) -> Path:
    """A Maildir with two emails and a calendar with a meeting ahead."""
    path.parent.mkdir(parents=True, exist_ok=True)
    maildir(path, [message("a1@acme.example", WILE, [REP], "Specs"), message("a2@acme.example", WILE, [REP], "Re")])
    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    (path / "calendar.ics").write_bytes(ics(vevent("review", "Review", ahead, attendees=(WILE,))))
    return path


def _activities(cli) -> list[dict]:  # type: ignore[no-untyped-def]
    result = cli("export", "activities", "--format", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def _mailbox(cli, name: str) -> dict:  # type: ignore[no-untyped-def]
    return next(m for m in json.loads(cli("status", "--json").out)["mailboxes"] if m["name"] == name)


def _one_line_error(result) -> None:  # type: ignore[no-untyped-def]
    assert result.code == 1 and result.out == "" and result.err.count("\n") == 1, result


# -- F3: change a mailbox's source -----------------------------------------------------------------------------


def test_a_moved_maildir_is_read_from_its_new_path_without_doubling(ready, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    old = _box(tmp_path / "mail" / "alice")
    assert ready("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{old}").code == 0
    assert ready("sync", "--once").code == 0
    before = _activities(ready)
    assert sorted(a["subject"] for a in before) == ["Re", "Review", "Specs"]

    new = shutil.move(str(old), str(tmp_path / "mail" / "alice-moved"))
    assert ready("sync", "--once").code == 1  # source path does not exist: failed
    assert _mailbox(ready, "alice")["state"] == "failed"

    changed = ready("mailbox", "source", "alice", f"maildir://{new}")
    assert changed.code == 0, changed.err
    assert changed.out.splitlines() == [
        f"mailbox alice: source maildir://{new} (was maildir://{old}); the next sync reads it from the start "
        "(nothing is doubled)",
        "mailbox alice: 1 future meeting or call only the old source carried cancelled (until the new one has it)",
    ]
    box = _mailbox(ready, "alice")
    assert (box["state"], box["last_error"]) == ("idle", None)  # failed → syncs again
    synced = ready("sync", "--once")
    assert synced.code == 0, synced.err
    assert "logged 0 activities" in synced.out
    after = _activities(ready)
    assert [(a["id"], a["status"], a["mailboxes"]) for a in after] == [
        (a["id"], a["status"], a["mailboxes"]) for a in before
    ]  # the new source's copy of the meeting brought it back: planned again


def test_a_meeting_the_new_source_no_longer_holds_is_not_carried_by_the_old_copy(  # type: ignore[no-untyped-def]
    ready, tmp_path: Path
) -> None:
    """The review of session 17: a renamed calendar file read through `mailbox source` left the old file's copy
    "carrying" its meetings, so one deleted later at the new source was never cancelled (and would have been
    completed when its time passed)."""
    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    folder = tmp_path / "cal"
    folder.mkdir()
    both = ics(
        vevent("review", "Review", ahead, attendees=(WILE,)),
        vevent("other", "Other", ahead + timedelta(days=1), attendees=(WILE,)),
    )
    (folder / "alice.ics").write_bytes(both)
    assert ready("mailbox", "add", "cal", "--owner", REP, "--source", f"ics://{folder / 'alice.ics'}").code == 0
    assert ready("sync", "--once").code == 0
    (folder / "alice.ics").rename(folder / "alice-2027.ics")
    assert ready("mailbox", "source", "cal", f"ics://{folder / 'alice-2027.ics'}").code == 0
    assert ready("sync", "--once").code == 0
    assert sorted((a["subject"], a["status"]) for a in _activities(ready)) == [
        ("Other", "planned"),
        ("Review", "planned"),
    ]
    (folder / "alice-2027.ics").write_bytes(ics(vevent("other", "Other", ahead + timedelta(days=1), attendees=(WILE,))))
    assert ready("sync", "--once").code == 0
    assert sorted((a["subject"], a["status"]) for a in _activities(ready)) == [
        ("Other", "planned"),
        ("Review", "cancelled"),  # deleted at the (new) source
    ]


def test_a_bad_new_source_is_refused_and_nothing_changes(ready, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    box = _box(tmp_path / "alice")
    assert ready("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{box}").code == 0
    missing = ready("mailbox", "source", "alice", f"maildir://{tmp_path}/nowhere")
    _one_line_error(missing)
    assert "source path does not exist" in missing.err
    _one_line_error(ready("mailbox", "source", "alice", "imaps://rep:pw@127.0.0.1:1/"))
    _one_line_error(ready("mailbox", "source", "nobody", f"maildir://{box}"))
    _one_line_error(ready("mailbox", "source", "alice", "gopher://x/"))
    assert _mailbox(ready, "alice")["source"] == f"maildir://{box}"
    assert ready("mailbox", "source", "alice").code == 2  # usage error


def test_a_paused_mailbox_takes_the_new_source_and_stays_paused(ready, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    box, other = _box(tmp_path / "alice"), _box(tmp_path / "alice2")
    assert ready("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{box}").code == 0
    assert ready("mailbox", "pause", "alice").code == 0
    changed = ready("mailbox", "source", "alice", f"maildir://{other}")
    assert changed.code == 0 and "paused: it reads the new source after crm-sync mailbox resume alice" in changed.out
    assert (_mailbox(ready, "alice")["state"], _mailbox(ready, "alice")["source"]) == ("paused", f"maildir://{other}")


def test_the_stored_secret_is_kept_replaced_or_dropped(ready, tmp_path: Path, monkeypatch, database_url: str) -> None:  # type: ignore[no-untyped-def]
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("CRM_SECRET_KEY", key)
    monkeypatch.setenv("BOX_PASSWORD", "first-pw")
    monkeypatch.setenv("NEW_PASSWORD", "second-pw")

    def stored() -> str | None:
        engine = create_engine(database_url)
        with engine.connect() as conn:
            secret = conn.execute(text("SELECT secret FROM mailboxes WHERE name = 'imapbox'")).scalar()
        engine.dispose()
        return SecretBox((key,)).decrypt(bytes(secret)) if secret is not None else None

    add = ("mailbox", "add", "imapbox", "--owner", REP, "--source", "imaps://rep@127.0.0.1:1/")
    assert ready(*add, "--secret-env", "BOX_PASSWORD").code == 0
    kept = ready("mailbox", "source", "imapbox", "imaps://rep@127.0.0.1:1/?folders=INBOX,Archive")
    assert kept.code == 0, kept.err
    assert "secret" not in kept.out and "pw" not in kept.out and stored() == "first-pw"
    replaced = ready("mailbox", "source", "imapbox", "imaps://rep@mail.example/", "--secret-env", "NEW_PASSWORD")
    assert replaced.code == 0 and "secret replaced" in replaced.out and stored() == "second-pw"
    dropped = ready("mailbox", "source", "imapbox", f"maildir://{_box(tmp_path / 'local')}")
    assert dropped.code == 0 and "stored secret dropped" in dropped.out and stored() is None
    # Back to a source that needs a secret: none stored, no terminal to prompt on → one line, exit 1.
    needs = ready("mailbox", "source", "imapbox", "imaps://rep@mail.example/")
    _one_line_error(needs)
    assert "--secret-env" in needs.err


def test_the_alert_names_the_command() -> None:
    assert "crm-sync mailbox source NAME URL" in plain_error("source path does not exist: /srv/mail/alice")
    assert "crm-sync mailbox source NAME URL" in plain_error("no IMAP folder 'Projects' for carol@host:993")


# -- F10: one source, one mailbox ------------------------------------------------------------------------------


def test_a_second_mailbox_on_the_same_source_is_refused_unless_meant(ready, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    box = _box(tmp_path / "alice")
    assert ready("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{box}").code == 0
    twice = ready("mailbox", "add", "alice-dup", "--owner", REP2, "--source", f"maildir://{box}/")
    _one_line_error(twice)
    assert "mailbox 'alice' already syncs" in twice.err and "--allow-shared-source" in twice.err
    other = _box(tmp_path / "bob")
    assert ready("mailbox", "add", "bob", "--owner", REP2, "--source", f"maildir://{other}").code == 0
    moved_onto = ready("mailbox", "source", "bob", f"maildir://{tmp_path}/bob/../alice")
    _one_line_error(moved_onto)
    assert "mailbox 'alice' already syncs" in moved_onto.err
    assert ready("mailbox", "source", "alice", f"maildir://{box}/").code == 0  # its own source: fine
    meant = ("mailbox", "add", "alice-dup", "--owner", REP2, "--source", f"maildir://{box}", "--allow-shared-source")
    assert ready(*meant).code == 0
    assert "--allow-shared-source" in ready("mailbox", "add", "--help").out


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("maildir:///srv/mail/alice", "maildir:///srv/mail/alice/", True),
        ("maildir:///srv/mail/alice", "maildir://localhost/srv/mail/./alice", True),
        ("maildir:///srv/mail/alice", "maildir:///srv/mail/Alice", False),
        ("maildir:///srv/mail/alice", "mbox:///srv/mail/alice", False),
        ("imaps://Alice@Mail.Example.com/", "imaps://alice@mail.example.com:993", True),
        ("imaps://alice@mail.example.com/?folders=INBOX", "imaps://alice@mail.example.com/?folders=Archive", True),
        ("imaps://alice@mail.example.com/", "imaps://bob@mail.example.com/", False),
        (
            "imaps://alice%40example.com@outlook.office365.com/",
            "imaps://alice@example.com@outlook.office365.com/",
            True,
        ),
        ("imap://alice@mail.example.com:1143/", "imap://alice@mail.example.com/", False),
        ("caldavs://alice@cal.example.com/dav/alice/work/", "caldavs://ALICE@cal.example.com/dav/alice/work", True),
        ("caldavs://alice@cal.example.com/dav/alice/work/", "caldavs://alice@cal.example.com/dav/alice/home/", False),
        ("ics+https://cal.example.com/feed.ics?token=a", "ics+https://cal.example.com/feed.ics?token=b", False),
        (
            "ews://svc@mail.contoso.com/EWS/Exchange.asmx?impersonate=alice@contoso.com",
            "ews://SVC@mail.contoso.com/?impersonate=Alice@contoso.com&auth=ntlm",
            True,
        ),
        (
            "ews://svc@mail.contoso.com/?impersonate=alice@contoso.com",
            "ews://svc@mail.contoso.com/?impersonate=bob@contoso.com",
            False,
        ),
        ("graph://contoso/alice@contoso.com?client_id=x", "graph://Contoso/Alice@contoso.com/?client_id=y", True),
        ("graph://contoso/alice@contoso.com?client_id=x", "graph://contoso/bob@contoso.com?client_id=x", False),
    ],
)
def test_what_names_a_source(a: str, b: str, same: bool) -> None:
    assert same_source(a, b) is same


# -- F4: mailbox remove says what it cancelled ------------------------------------------------------------------


def test_remove_says_how_many_meetings_ahead_it_cancelled(ready, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    box = _box(tmp_path / "alice")
    assert ready("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{box}").code == 0
    assert ready("sync", "--once").code == 0
    removed = ready("mailbox", "remove", "alice")
    assert removed.code == 0, removed.err
    assert removed.out.splitlines() == [
        "mailbox alice: removed",
        "mailbox alice: 1 future meeting or call that only it carried cancelled",
    ]
    status = {a["subject"]: (a["status"], a["mailboxes"]) for a in _activities(ready)}
    assert status == {"Specs": ("completed", []), "Re": ("completed", []), "Review": ("cancelled", [])}
    # Added again: the meeting comes back.
    assert ready("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{box}").code == 0
    assert ready("sync", "--once").code == 0
    assert {a["subject"]: a["status"] for a in _activities(ready)}["Review"] == "planned"

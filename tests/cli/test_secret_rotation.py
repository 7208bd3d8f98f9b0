"""`crm-sync secret-key rotate` (retiring an old CRM_SECRET_KEY) and `crm-sync mailbox secret NAME`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import InvalidToken
from sqlalchemy import create_engine, text, update

from crm_store.db import transaction
from crm_store.models import Mailbox
from crm_store.secrets import SecretBox, generate_key
from sync_service import mailboxes
from sync_service.bootstrap import App
from sync_service.mailbox_secrets import Rotation, rotate_secrets
from tests.support.builders import REP, message
from tests.support.dovecot import DovecotServer
from tests.support.leaky import EchoingImapServer

ALICE, BOB = "alice-Passw0rd", '{"token_url": "https://login.example/token", "client_id": "c", "refresh_token": "r"}'


def _stored(database_url: str) -> dict[str, bytes | None]:
    """Mailbox name → its encrypted secret, as stored."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, secret FROM mailboxes")).all()
    engine.dispose()
    return {name: bytes(secret) if secret is not None else None for name, secret in rows}


def _add(cli: Any, monkeypatch: pytest.MonkeyPatch, name: str, source: str, secret: str | None = None) -> None:
    options = []
    if secret is not None:
        monkeypatch.setenv("BOX_SECRET", secret)
        options = ["--secret-env", "BOX_SECRET"]
    added = cli("mailbox", "add", name, "--owner", REP, "--source", source, *options)
    assert added.code == 0, added.err


def test_secret_key_alone_still_prints_a_new_key(cli: Any) -> None:
    result = cli("secret-key")
    assert result.code == 0 and result.err == ""
    assert SecretBox([result.out.strip()]) and result.out.count("\n") == 1  # one valid Fernet key, nothing else


def test_rotate_re_encrypts_every_secret_under_the_new_key(
    cli: Any, monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path
) -> None:
    old, new = generate_key(), generate_key()
    monkeypatch.setenv("CRM_SECRET_KEY", old)
    monkeypatch.setenv("CRM_FETCH_PROCESS", "0")
    assert cli("init").code == 0
    (tmp_path / "mail").mkdir()
    with EchoingImapServer() as server:
        _add(cli, monkeypatch, "alice", server.url(), ALICE)
        _add(cli, monkeypatch, "bob", server.url(user="bob", query="folders=INBOX&auth=xoauth2"), BOB)
        _add(cli, monkeypatch, "local", f"maildir://{tmp_path / 'mail'}")  # no secret: nothing to rotate
        before = _stored(database_url)

        monkeypatch.setenv("CRM_SECRET_KEY", f"{new},{old}")
        rotated = cli("secret-key", "rotate")
        assert rotated.code == 0, rotated.err
        assert (
            rotated.out.strip()
            == "re-encrypted 2 mailbox secrets under the first key of CRM_SECRET_KEY (0 already were)"
        )
        after = _stored(database_url)
        assert after["local"] is None and after["alice"] != before["alice"] and after["bob"] != before["bob"]
        for name, secret in (("alice", ALICE), ("bob", BOB)):
            token = after[name]
            assert token is not None and SecretBox([new]).decrypt(token) == secret
            with pytest.raises(InvalidToken):  # the old key is no longer needed (nor able) to read it
                SecretBox([old])._fernet.decrypt(token)

        again = cli("secret-key", "rotate")  # idempotent: nothing left to do, nothing rewritten
        assert again.code == 0 and "re-encrypted 0 mailbox secrets" in again.out and "(2 already were)" in again.out
        assert _stored(database_url) == after

        monkeypatch.setenv("CRM_SECRET_KEY", new)  # the old key dropped: the sync still reads the secret
        synced = cli("sync", "--once", "--mailbox", "alice")
        assert synced.code == 1 and "login failed" in synced.err and "decrypt" not in synced.err
        assert server.logins == [f'"alice" "{ALICE}"']  # the password reached the server, decrypted with `new` alone


def test_rotate_changes_nothing_when_a_secret_cannot_be_decrypted(
    cli: Any, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    first, other, new = generate_key(), generate_key(), generate_key()
    monkeypatch.setenv("CRM_SECRET_KEY", first)
    assert cli("init").code == 0
    _add(cli, monkeypatch, "alice", "imap://alice@127.0.0.1:1/", ALICE)
    monkeypatch.setenv("CRM_SECRET_KEY", other)  # stored under a key that is then left out of CRM_SECRET_KEY
    _add(cli, monkeypatch, "zed", "imap://zed@127.0.0.1:1/", "zed-Passw0rd")
    before = _stored(database_url)

    monkeypatch.setenv("CRM_SECRET_KEY", f"{new},{first}")
    failed = cli("secret-key", "rotate")
    assert failed.code == 1 and failed.out == ""
    assert failed.err.count("\n") == 1 and "mailbox zed cannot be decrypted" in failed.err
    assert "nothing was changed" in failed.err and "alice" not in failed.err
    assert _stored(database_url) == before  # alice's secret, rotated before zed's failed, was rolled back too

    monkeypatch.setenv("CRM_SECRET_KEY", f"{new},{first},{other}")  # with every key, it goes through
    assert "re-encrypted 2 mailbox secrets" in cli("secret-key", "rotate").out


def test_a_secret_a_sync_stores_during_the_rotation_is_kept(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sync that stores a rotated refresh token while the rotation runs must not lose it to the old one."""
    old, new = generate_key(), generate_key()
    with transaction(app.sessions) as session:
        source = "imap://bob@127.0.0.1:1/?auth=xoauth2"
        mailbox_id = mailboxes.add_mailbox(session, "bob", REP, source, BOB, (old,)).id
    fresh = SecretBox([new, old]).encrypt(BOB.replace('"r"', '"rotated"'))  # as a restarted worker stores it
    rotate = SecretBox.rotate

    def rotate_while_a_sync_stores(box: SecretBox, token: bytes) -> bytes:
        if token != fresh:  # the sync commits between the rotation's read and its write
            with transaction(app.sessions) as other:
                other.execute(update(Mailbox).where(Mailbox.id == mailbox_id).values(secret=fresh))
        return rotate(box, token)

    monkeypatch.setattr(SecretBox, "rotate", rotate_while_a_sync_stores)
    with transaction(app.sessions) as session:
        assert rotate_secrets(session, (new, old)) == Rotation(rotated=0, current=1)
    with app.sessions() as session:
        assert session.get_one(Mailbox, mailbox_id).secret == fresh


def test_rotate_needs_a_key(cli: Any) -> None:
    assert cli("init").code == 0
    result = cli("secret-key", "rotate")
    assert result.code == 1 and "CRM_SECRET_KEY is not set" in result.err and result.err.count("\n") == 1


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    server = DovecotServer({"alice": ALICE})
    server.start()
    try:
        yield server
    finally:
        server.close()


def _cursors(database_url: str) -> list[tuple[str, str | None]]:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT folder, cursor FROM folder_states ORDER BY folder")).all()
    engine.dispose()
    return [(folder, cursor) for folder, cursor in rows]


def test_mailbox_secret_replaces_the_secret_and_keeps_the_cursors(
    cli: Any, monkeypatch: pytest.MonkeyPatch, database_url: str, dovecot: DovecotServer
) -> None:
    monkeypatch.setenv("CRM_SECRET_KEY", generate_key())
    assert cli("init").code == 0
    dovecot.append("alice", [message(f"m{i}@acme.example", "wile@acme.example", [REP], f"Mail {i}") for i in range(3)])
    _add(cli, monkeypatch, "alice", dovecot.url("alice", query="folders=INBOX"), ALICE)
    assert cli("sync", "--once").code == 0
    cursors = _cursors(database_url)
    assert cursors and all(cursor for _folder, cursor in cursors)

    monkeypatch.setenv("NEW_SECRET", "changed-at-the-provider")
    replaced = cli("mailbox", "secret", "alice", "--secret-env", "NEW_SECRET")
    assert replaced.code == 0 and replaced.out == "mailbox alice: secret replaced\n"
    assert _cursors(database_url) == cursors
    refused = cli("sync", "--once")  # the new secret is the one used: Dovecot refuses it
    assert refused.code == 1 and "login failed" in refused.err and "changed-at-the-provider" not in refused.err

    monkeypatch.setenv("NEW_SECRET", ALICE)
    replaced = cli("mailbox", "secret", "alice", "--secret-env", "NEW_SECRET")
    assert replaced.code == 0 and "mailbox alice is failed: run crm-sync mailbox resume alice" in replaced.out
    assert cli("mailbox", "resume", "alice").code == 0
    dovecot.append("alice", [message("m3@acme.example", "wile@acme.example", [REP], "Mail 3")])
    synced = cli("sync", "--once")
    assert synced.code == 0, synced.err
    assert "alice: idle, 1 new or changed items" in synced.out  # from the kept cursor: only the new message
    assert _cursors(database_url) != cursors
    status = json.loads(cli("status", "--json").out)["mailboxes"][0]
    assert status["state"] == "idle"


def test_mailbox_secret_refusals_change_nothing(
    cli: Any, monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path
) -> None:
    monkeypatch.setenv("CRM_SECRET_KEY", generate_key())
    assert cli("init").code == 0
    (tmp_path / "mail").mkdir()
    _add(cli, monkeypatch, "local", f"maildir://{tmp_path / 'mail'}")
    _add(cli, monkeypatch, "oauth", "imap://alice@127.0.0.1:1/?auth=xoauth2", BOB)
    before = _stored(database_url)
    monkeypatch.setenv("NEW_SECRET", '{"refresh_token": "no token_url"')
    monkeypatch.setenv("EMPTY", "")
    for args, reason in (
        (("nobody", "--secret-env", "NEW_SECRET"), "no mailbox named 'nobody'"),
        (("local", "--secret-env", "NEW_SECRET"), "mailbox local (maildir://"),
        (("oauth", "--secret-env", "NEW_SECRET"), "does not parse"),  # the grant is checked as on `add`
        (("oauth", "--secret-env", "EMPTY"), "EMPTY is not set or empty"),
        (("oauth",), "pass --secret-env VAR (no terminal to prompt on)"),
    ):
        result = cli("mailbox", "secret", *args)
        assert result.code == 1 and reason in result.err and result.err.count("\n") == 1, (args, result)
        assert "no token_url" not in result.err
    assert _stored(database_url) == before

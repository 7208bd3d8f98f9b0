"""XOAUTH2 with a refresh grant, against a real Dovecot whose ``oauth2`` passdb checks every access token with a
loopback token-info endpoint, and a loopback token endpoint (``tests/support/oauth_server.py``) issuing them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from crm_store.db import transaction
from crm_store.models import Mailbox
from crm_store.models.sync import FAILED
from crm_store.secrets import SecretBox
from sync_service import mailboxes
from sync_service.bootstrap import App
from sync_service.connectors.imap import ImapConnector
from sync_service.connectors.imap_oauth import parse_grant
from sync_service.errors import ConfigError, PermanentSourceError, TransientSourceError
from sync_service.pipeline.runner import sync_mailbox
from tests.imap.conftest import PASSWORD
from tests.support.builders import REP, message
from tests.support.dovecot import DovecotServer
from tests.support.oauth_server import OAuthServer

CLIENT_ID, CLIENT_SECRET, REFRESH = "crm-sync-app", "client-Secret-42", "rt-Original-1"
VALID = ("at-valid-1", "at-valid-2", "at-valid-3")  # the only tokens Dovecot accepts (for alice)


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    server = DovecotServer({"alice": PASSWORD}, oauth_tokens=dict.fromkeys(VALID, "alice"))
    server.start()
    server.append("alice", [message(f"o{i}@test", "wile@acme.example", [REP], f"Mail {i}") for i in range(2)])
    try:
        yield server
    finally:
        server.close()


def oauth(*issue: str, rotate: bool = False, expires_in: int = 3600) -> OAuthServer:
    return OAuthServer(CLIENT_ID, REFRESH, issue, CLIENT_SECRET, expires_in=expires_in, rotate=rotate).start()


def grant(server: OAuthServer, refresh_token: str = REFRESH) -> str:
    return json.dumps({"token_url": server.token_url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                       "refresh_token": refresh_token, "scope": "imap offline_access"})  # fmt: skip


def imap(dovecot: DovecotServer, secret: str) -> ImapConnector:
    connector = ImapConnector(dovecot.url("alice", query="auth=xoauth2"), secret)
    connector.backoff = ()
    return connector


def fetched(connector: ImapConnector) -> int:
    try:
        page = connector.list_changes("INBOX", None)
        return len(list(connector.fetch("INBOX", page.upserts)))
    finally:
        connector.close()


def test_refresh_grant_logs_in_and_shares_the_cached_token(dovecot: DovecotServer) -> None:
    server = oauth("at-valid-1", "at-valid-2")
    try:
        assert fetched(imap(dovecot, grant(server))) == 2
        assert fetched(imap(dovecot, grant(server))) == 2  # another connection (a watch, a second sync)
        assert len(server.requests) == 1, "the access token is cached until it expires"
        sent = server.requests[0]
        assert sent == {"grant_type": "refresh_token", "refresh_token": REFRESH, "client_id": CLIENT_ID,
                        "client_secret": CLIENT_SECRET, "scope": "imap offline_access"}  # fmt: skip
    finally:
        server.close()


def test_a_refused_access_token_is_refreshed_and_the_login_retried_once(dovecot: DovecotServer) -> None:
    # The first token looks valid for an hour but Dovecot refuses it (revoked): one refresh, one more login.
    server = oauth("at-revoked", "at-valid-2")
    try:
        connector = imap(dovecot, grant(server, REFRESH))
        assert fetched(connector) == 2
        assert len(server.requests) == 2
    finally:
        server.close()


def test_a_token_refused_again_after_the_refresh_fails_the_login(dovecot: DovecotServer) -> None:
    # No loop: a permanent login failure after exactly one retry. (A fresh Dovecot: its failed-login penalty
    # grows with every failure from an address, so the failures are split over two tests.)
    server = oauth("at-revoked-a", "at-revoked-b", "at-valid-3")
    try:
        with pytest.raises(PermanentSourceError, match="login failed"):
            imap(dovecot, grant(server)).folders()
        assert len(server.requests) == 2
    finally:
        server.close()


def test_a_rejected_refresh_token_fails_the_mailbox_with_one_line(
    dovecot: DovecotServer, keyed_app: App, caplog: pytest.LogCaptureFixture
) -> None:
    server = oauth("at-valid-1")
    try:
        secret = grant(server, "rt-Revoked-9")
        with pytest.raises(PermanentSourceError) as refused:
            imap(dovecot, secret).folders()
        text = str(refused.value)
        assert "invalid_grant" in text and "\n" not in text and "alice@127.0.0.1" in text
        assert "rt-Revoked-9" not in text and CLIENT_SECRET not in text
        with transaction(keyed_app.sessions) as session:
            mailboxes.add_mailbox(session, "alice-oauth", REP, dovecot.url("alice", query="auth=xoauth2"), secret,
                                  keyed_app.settings.secret_keys)  # fmt: skip
        with keyed_app.sessions() as session:
            mailbox = session.scalars(select(Mailbox)).one()
        result = sync_mailbox(keyed_app, mailbox)
        with keyed_app.sessions() as session:
            stored = session.scalars(select(Mailbox)).one()
        assert result.state == FAILED and stored.state == FAILED and not result.transient
        assert stored.last_error is not None and "invalid_grant" in stored.last_error
        assert "rt-Revoked-9" not in stored.last_error and "rt-Revoked-9" not in caplog.text
        assert CLIENT_SECRET not in caplog.text
    finally:
        server.close()


def test_a_token_endpoint_outage_is_transient(dovecot: DovecotServer) -> None:
    server = oauth("at-valid-1")
    server.outage = 503
    try:
        with pytest.raises(TransientSourceError, match="HTTP 503"):
            imap(dovecot, grant(server)).folders()
        server.outage = None
        assert fetched(imap(dovecot, grant(server))) == 2
    finally:
        server.close()


def test_a_rotated_refresh_token_is_stored_for_the_next_sync(dovecot: DovecotServer, keyed_app: App) -> None:
    # Tokens that live 30 s are never reused (refreshed a minute early): every login refreshes.
    server = oauth("at-valid-1", "at-valid-2", rotate=True, expires_in=30)
    try:
        secret = grant(server, REFRESH)
        with transaction(keyed_app.sessions) as session:
            mailboxes.add_mailbox(session, "alice-oauth", REP, dovecot.url("alice", query="auth=xoauth2"), secret,
                                  keyed_app.settings.secret_keys)  # fmt: skip
        with keyed_app.sessions() as session:
            mailbox = session.scalars(select(Mailbox)).one()
        assert sync_mailbox(keyed_app, mailbox).stored == 2
        with keyed_app.sessions() as session:
            stored = session.scalars(select(Mailbox)).one()
        assert stored.secret is not None
        new_secret = SecretBox(keyed_app.settings.secret_keys).decrypt(stored.secret)
        assert json.loads(new_secret)["refresh_token"] == "rt-rotated-1"
        assert server.refresh_tokens == {"rt-rotated-1"}  # the original one no longer works …
        # … and the next login refreshes with the stored, rotated one.
        assert fetched(imap(dovecot, new_secret)) == 2
        assert [r["refresh_token"] for r in server.requests] == [REFRESH, "rt-rotated-1"]
    finally:
        server.close()


def test_grant_secrets_are_checked_without_network() -> None:
    assert parse_grant("ya29.plain-access-token") is None
    ok = parse_grant('{"token_url": "https://login.example/token", "client_id": "c", "refresh_token": "r"}')
    assert ok is not None and ok.client_secret is None and ok.scope is None
    with pytest.raises(ConfigError, match="https"):
        parse_grant('{"token_url": "http://login.example/token", "client_id": "c", "refresh_token": "r"}')
    with pytest.raises(ConfigError, match="lacks refresh_token"):
        parse_grant('{"token_url": "https://login.example/token", "client_id": "c"}')
    with pytest.raises(ConfigError, match="does not parse"):
        ImapConnector("imaps://alice@mail.example/?auth=xoauth2", '{"token_url": ')

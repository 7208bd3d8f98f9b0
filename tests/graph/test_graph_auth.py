"""Sign-in with MSAL against the fake Entra ID endpoints: client secret, certificate, device code; token cache,
refresh after a 401, permission and application-access-policy refusals."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest

from sync_service.connectors import graph_auth
from sync_service.connectors.graph import GraphConnector
from sync_service.errors import ConfigError, PermanentSourceError
from tests.graph.conftest import CLIENT_ID, drain
from tests.support.builders import REP, REP2, message
from tests.support.graph_server import FakeGraphServer
from tests.support.graph_tls import client_certificate


def _mail(n: int) -> bytes:
    return message(f"auth-{n}@acme.example", "wile@acme.example", [REP], f"Rockets {n}")


def test_client_credentials_token_is_cached_and_shared(graph: FakeGraphServer, alice, connect) -> None:
    alice.deliver(_mail(1))
    drain(connect(), "inbox")
    drain(connect(), "inbox")  # a second sync (new connector) reuses the app token from the MSAL cache
    assert graph.identity.grants == ["client_credentials"]
    assert len(graph.graph_requests("/$value")) == 2


def test_a_short_lived_token_is_renewed(graph: FakeGraphServer, alice, connect) -> None:
    graph.identity.token_lifetime = 120  # MSAL treats tokens expiring within 5 minutes as expired
    alice.deliver(_mail(1))
    drain(connect(), "inbox")
    drain(connect(), "inbox")
    assert len(graph.identity.grants) >= 2


def test_a_revoked_token_is_refreshed_once_and_the_request_repeated(graph: FakeGraphServer, alice, connect) -> None:
    alice.deliver(_mail(1))
    connector = connect()
    drain(connector, "inbox")
    graph.revoke_access_tokens()  # Graph now answers 401 InvalidAuthenticationToken for the cached token
    pages, _ = drain(connector, "inbox", None)
    assert len(pages[0].upserts) == 1
    assert graph.identity.grants == ["client_credentials", "client_credentials"]


def test_wrong_client_secret_is_permanent(connect) -> None:
    with pytest.raises(PermanentSourceError, match="invalid_client"):
        connect(secret="wrong").list_changes("inbox", None)


def test_unknown_app_is_permanent(connect) -> None:
    with pytest.raises(PermanentSourceError, match="unauthorized_client"):
        connect(client_id="00000000-0000-0000-0000-000000000000").list_changes("inbox", None)


def test_certificate_credential_signs_a_client_assertion(graph: FakeGraphServer, alice, connect) -> None:
    secret, certificate, _ = client_certificate()
    graph.register_app("cert-app", certificate_pem=certificate)
    alice.deliver(_mail(1))
    _, items = drain(connect(client_id="cert-app", secret=secret), "inbox")
    assert len(items) == 1 and graph.identity.grants == ["client_credentials"]
    other_key, _, _ = client_certificate()  # a certificate that was never uploaded to the app registration
    with pytest.raises(PermanentSourceError, match="invalid_client"):
        connect(client_id="cert-app", secret=other_key).list_changes("inbox", None)


def test_a_pem_secret_needs_key_and_certificate(connect) -> None:
    _, certificate, _ = client_certificate()
    with pytest.raises(ConfigError, match="private key and the certificate"):
        connect(secret=certificate).list_changes("inbox", None)


def test_missing_permission_and_access_policy_are_permanent(graph: FakeGraphServer, alice, connect) -> None:
    graph.register_app("mail-only", secret="x", roles=("Mail.Read",))
    drain(connect(client_id="mail-only", secret="x"), "inbox")
    with pytest.raises(PermanentSourceError, match="ErrorAccessDenied"):
        connect(client_id="mail-only", secret="x").list_changes("calendar", None)
    graph.mailbox(REP2)
    graph.allowed_mailboxes = {REP2}  # New-ApplicationAccessPolicy … -AccessRight RestrictAccess
    with pytest.raises(PermanentSourceError, match="AccessPolicy"):
        connect().list_changes("inbox", None)
    assert drain(connect(upn=REP2), "inbox")[0][-1].more is False


def test_unknown_mailbox_is_permanent(graph: FakeGraphServer, connect) -> None:
    with pytest.raises(PermanentSourceError, match=r"not found.*ErrorInvalidUser"):
        connect(upn="nobody@northwind-sales.example").list_changes("inbox", None)


def test_every_graph_request_asks_for_immutable_ids(graph: FakeGraphServer, alice, connect) -> None:
    alice.deliver(_mail(1))
    connector = connect()
    for folder in connector.folders():
        drain(connector, folder)
    logged = graph.graph_requests()
    assert logged and all('IdType="ImmutableId"' in entry.prefer for entry in logged)


# --- delegated: device code ----------------------------------------------------------------------------------


def _device_secret(graph: FakeGraphServer) -> str:
    graph.register_app("public-app", public=True)
    graph.identity.device_user = REP
    shown = io.StringIO()
    secret = graph_auth.device_login(graph.source_url(REP, "public-app", auth="device"), out=shown)
    assert "enter the code" in shown.getvalue()  # what the person is told to do
    return secret


def test_device_code_sign_in_then_silent_refresh_and_rotation(graph: FakeGraphServer, alice) -> None:
    alice.deliver(_mail(1))
    secret = _device_secret(graph)
    assert json.loads(secret)["RefreshToken"]  # the MSAL token cache holds the refresh token
    url = graph.source_url(REP, "public-app", auth="device")
    first = GraphConnector(url, secret)
    _, items = drain(first, "inbox")
    assert len(items) == 1 and first.rotated_secret() is None  # the cached access token was still good
    first.close()
    graph.revoke_access_tokens()
    second = GraphConnector(url, secret)
    drain(second, "inbox")  # 401 → refresh token → new tokens, and a new refresh token in the cache
    rotated = second.rotated_secret()
    second.close()
    assert rotated is not None and rotated != secret
    assert graph.identity.grants == ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"]
    graph.identity.revoke_refresh_tokens()
    graph.revoke_access_tokens()
    with pytest.raises(PermanentSourceError, match="sign in again"):
        GraphConnector(url, rotated).list_changes("inbox", None)


def test_delegated_token_cannot_read_someone_elses_mailbox(graph: FakeGraphServer) -> None:
    secret = _device_secret(graph)
    graph.mailbox(REP2)
    with pytest.raises(PermanentSourceError, match="ErrorAccessDenied"):
        GraphConnector(graph.source_url(REP2, "public-app", auth="device"), secret).list_changes("inbox", None)


def test_login_command_writes_a_private_file(graph: FakeGraphServer, tmp_path: Path, capsys) -> None:
    graph.register_app("public-app", public=True)
    graph.identity.device_user = REP
    target = tmp_path / "cache.json"
    code = graph_auth.main(["login", graph.source_url(REP, "public-app", auth="device"), "--output", str(target)])
    assert code == 0 and json.loads(target.read_text())["AccessToken"]
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert "enter the code" in capsys.readouterr().err
    assert graph_auth.main(["login", graph.source_url(REP, CLIENT_ID), "--output", str(target)]) == 1

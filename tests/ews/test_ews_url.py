"""``ews://`` URL forms (documented in docs/exchange.md) and their validation."""

from __future__ import annotations

import pytest

from sync_service.connectors.ews_account import EwsSettings, parse_url
from sync_service.errors import ConfigError


def test_impersonation_with_ntlm_by_default() -> None:
    s = parse_url("ews://CONTOSO%5Csvc-crm-sync@mail.contoso.com/EWS/Exchange.asmx?impersonate=Alice@Contoso.com")
    assert s == EwsSettings(
        login="CONTOSO\\svc-crm-sync",
        endpoint="https://mail.contoso.com/EWS/Exchange.asmx",
        auth="ntlm",
        mailbox="alice@contoso.com",
        impersonate=True,
        autodiscover=False,
        timeout=60,
        past_days=90,
        future_days=180,
        max_occurrences=1000,
        folders=("inbox", "sent", "calendar", "contacts"),
    )


def test_delegate_own_mailbox_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    delegate = parse_url("ews://svc@mail.contoso.com:8443?auth=basic&mailbox=bob@contoso.com&folders=inbox,sent")
    assert (delegate.mailbox, delegate.impersonate) == ("bob@contoso.com", False)
    assert delegate.endpoint == "https://mail.contoso.com:8443/EWS/Exchange.asmx" and delegate.auth == "basic"
    assert delegate.folders == ("inbox", "sent")
    own = parse_url("ews://carol%40contoso.com@mail.contoso.com/EWS/Exchange.asmx?tls=0&timeout=5")
    assert (own.login, own.mailbox, own.endpoint, own.timeout) == (
        "carol@contoso.com",
        "carol@contoso.com",
        "http://mail.contoso.com/EWS/Exchange.asmx",
        5,
    )
    monkeypatch.setenv("CRM_SYNC_WINDOW_PAST_DAYS", "30")
    window = parse_url("ews://carol%40contoso.com@mail.contoso.com/?future_days=60&max_occurrences=50")
    assert (window.past_days, window.future_days, window.max_occurrences) == (30, 60, 50)


def test_autodiscover_and_oauth_forms() -> None:
    auto = parse_url("ews://svc@autodiscover/?autodiscover=1&impersonate=alice@contoso.com")
    assert auto.autodiscover and auto.mailbox == "alice@contoso.com"
    app = parse_url("ews://svc@mail.contoso.com/?auth=oauth&client_id=app-1&tenant=t-2&impersonate=a@contoso.com")
    assert (app.auth, app.client_id, app.tenant) == ("oauth", "app-1", "t-2")
    token = parse_url("ews://svc@mail.contoso.com/?auth=oauth&impersonate=a@contoso.com")
    assert token.client_id is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ews://svc:pw@mail.contoso.com/?impersonate=a@contoso.com", "password"),
        ("ews://mail.contoso.com/?impersonate=a@contoso.com", "no login"),
        ("ews://svc@mail.contoso.com/", "name the mailbox"),
        ("ews://svc@mail.contoso.com/?impersonate=a@contoso.com&auth=kerberos", "auth="),
        ("ews://svc@mail.contoso.com/?impersonate=a@contoso.com&verify=0", "unknown option"),
        ("ews://svc@mail.contoso.com/?impersonate=a@contoso.com&folders=inbox,junk", "folders="),
        ("ews://svc@mail.contoso.com/?impersonate=a@contoso.com&timeout=0", "timeout="),
        ("ews://svc@mail.contoso.com/?impersonate=a@contoso.com&tls=maybe", "tls="),
        ("ews://svc@mail.contoso.com/?impersonate=a@contoso.com&auth=oauth&client_id=x", "client_id"),
        ("ews://svc@/?impersonate=a@contoso.com", "no server"),
    ],
)
def test_bad_urls_are_config_errors(url: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        parse_url(url)


def test_oauth_needs_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    for url in (
        "ews://svc@mail.contoso.com/?auth=oauth&tls=0&impersonate=a@contoso.com",
        "ews://svc@mail.contoso.com/?auth=OAuth&tls=off&client_id=app-1&tenant=t-2&impersonate=a@contoso.com",
    ):
        with pytest.raises(ConfigError, match=r"^ews: OAuth needs TLS: remove tls=0 \(or use auth=basic or auth=ntlm"):
            parse_url(url)
    assert parse_url("ews://svc@mail.contoso.com/?auth=basic&tls=0&impersonate=a@contoso.com").auth == "basic"
    assert parse_url("ews://svc@mail.contoso.com/?auth=oauth&tls=1&impersonate=a@contoso.com").auth == "oauth"
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # oauthlib's own switch, for loopback tests
    loopback = parse_url("ews://svc@127.0.0.1:8080/?auth=oauth&tls=0&impersonate=a@contoso.com")
    assert loopback.endpoint == "http://127.0.0.1:8080/EWS/Exchange.asmx"

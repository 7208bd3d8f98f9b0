"""``graph://`` URLs: what they mean, and the clear errors for what cannot work."""

from __future__ import annotations

import pytest

from sync_service.connectors.graph_config import DEFAULT_FOLDERS, parse_graph_url
from sync_service.connectors.registry import needs_secret, open_connector
from sync_service.errors import ConfigError


def test_defaults_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_SYNC_WINDOW_PAST_DAYS", "30")
    config = parse_graph_url("graph://contoso.onmicrosoft.com/Alice@Contoso.com?client_id=app-1")
    assert (config.tenant, config.user, config.client_id, config.auth) == (
        "contoso.onmicrosoft.com", "alice@contoso.com", "app-1", "app")  # fmt: skip
    assert config.folders == DEFAULT_FOLDERS and (config.past_days, config.future_days) == (30, 180)
    assert config.base == "https://graph.microsoft.com/v1.0" and config.origin == "https://graph.microsoft.com"
    assert config.authority_url == "https://login.microsoftonline.com/contoso.onmicrosoft.com"
    national = parse_graph_url(
        "graph://t/bob@contoso.us?client_id=x&auth=device&base=https://graph.microsoft.us/v1.0/"
        "&authority=https://login.microsoftonline.us&folders=inbox,calendar&past_days=7&timeout=5"
    )
    assert national.auth == "device" and national.folders == ("inbox", "calendar")
    assert national.base == "https://graph.microsoft.us/v1.0" and national.past_days == 7 and national.timeout == 5


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("graph://t/alice@contoso.com", "client_id"),
        ("graph://t/alice?client_id=x", "user@domain"),
        ("graph://me:pw@t/alice@contoso.com?client_id=x", "no credentials"),
        ("graph://t/alice@contoso.com?client_id=x&auth=basic", "auth must be"),
        ("graph://t/alice@contoso.com?client_id=x&base=http://127.0.0.1/v1.0", "https"),
        ("graph://t/alice@contoso.com?client_id=x&secret=oops", "unknown option"),
        ("graph://t/alice@contoso.com?client_id=x&past_days=-1", "negative"),
        ("graph://t/alice@contoso.com?client_id=x&folders=inbox,inbox", "distinct"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        parse_graph_url(url)


def test_registered_and_secret_required() -> None:
    assert needs_secret("graph://t/alice@contoso.com?client_id=x")
    with pytest.raises(ConfigError, match="secret is missing"):
        open_connector("graph://t/alice@contoso.com?client_id=x", None)

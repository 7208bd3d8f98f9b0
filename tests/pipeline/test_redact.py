"""``redact_secret``: a mailbox secret masked in a text, as it is and as libraries quote it (SPEC §6)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from crm_store.db import transaction
from crm_store.migrate import upgrade
from crm_store.models import Mailbox
from crm_store.secrets import generate_key
from sync_service import mailboxes
from sync_service.bootstrap import App, bootstrap
from sync_service.pipeline.runner import record_failure
from sync_service.redact import MASK, RedactedError, redact_secret, redacted_error
from tests.conftest import make_settings
from tests.support.builders import REP

IMAP = "imap://alice@127.0.0.1:1/"  # never connected to
SECRET = "pä\"ss w'o\\rd/+=XYZZY"  # quotes, a backslash, a space, URL and base64 specials, non-ASCII


def test_the_secret_is_masked_and_the_rest_kept() -> None:
    text = f"login refused for alice: {SECRET} (AUTHENTICATIONFAILED)"
    assert redact_secret(text, SECRET) == f"login refused for alice: {MASK} (AUTHENTICATIONFAILED)"
    assert redact_secret(f"{SECRET}{SECRET}", SECRET) == MASK * 2
    assert redact_secret(f"{SECRET} and other-Secret", None, SECRET, "other-Secret") == f"{MASK} and {MASK}"


def test_no_secret_changes_nothing() -> None:
    assert redact_secret("nothing to hide", None, "") == "nothing to hide"
    assert redacted_error(ValueError("nothing to hide"), "s3cret") is None


@pytest.mark.parametrize(
    "encoded",
    [
        quote(SECRET, safe=""),
        quote_plus(SECRET),
        base64.b64encode(SECRET.encode()).decode(),
        base64.b64encode(SECRET.encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(SECRET.encode()).decode(),
        repr(SECRET),  # str repr
        repr(SECRET.encode()),  # bytes repr: \xc3\xa4, \\, and ' or " escaped
        json.dumps(SECRET),  # JSON string: \" \\ \u00e4
        '"' + SECRET.replace("\\", "\\\\").replace('"', '\\"') + '"',  # IMAP-quoted LOGIN argument
        repr([('"' + SECRET.replace("\\", "\\\\").replace('"', '\\"') + '"').encode()]),  # …in imaplib's error
    ],
    ids=[
        "url",
        "url-plus",
        "base64",
        "base64-unpadded",
        "base64-url",
        "repr",
        "bytes-repr",
        "json",
        "imap-quoted",
        "imaplib-error",
    ],
)
def test_common_encodings_are_masked(encoded: str) -> None:
    masked = redact_secret(f"server said: {encoded} (end)", SECRET)
    assert masked.startswith("server said: ") and masked.endswith(" (end)")
    left = masked.removeprefix("server said: ").removesuffix(" (end)")
    assert MASK in left and set(left.replace(MASK, "")) <= set("b'\"[]=")  # the quotes around it, at most


def test_a_repr_quoting_the_secret_in_another_style_is_masked() -> None:
    """A ``repr`` picks its quotes after the whole text: with a ``"`` elsewhere, a ``'`` in the secret is escaped."""
    secret = "it's-XYZZY"
    assert redact_secret(repr(b'NO "alice" ' + secret.encode()), secret) == "b'NO \"alice\" ***'"
    assert redact_secret(repr(b"NO 'alice' " + secret.encode()), secret) == "b\"NO 'alice' ***\""


def test_credentials_inside_a_json_secret_are_masked_one_by_one() -> None:
    grant = {
        "token_url": "https://login.example/tenant/token",
        "client_id": "app-42",
        "refresh_token": "0.AR8A-refresh+token",
        "client_secret": "cl1ent~secret",
        "scope": "IMAP offline",
    }
    text = (
        f"refresh refused for app-42 at https://login.example/tenant/token: refresh_token="
        f"{quote_plus(grant['refresh_token'])}, client secret {grant['client_secret']!r}, scope IMAP offline"
    )
    masked = redact_secret(text, json.dumps(grant))
    assert "refresh+token" not in masked and "refresh%2Btoken" not in masked and "cl1ent" not in masked
    # what is not a credential stays: it tells the reader which app and endpoint
    assert masked == (
        f"refresh refused for app-42 at https://login.example/tenant/token: refresh_token={MASK}, client secret "
        f"'{MASK}', scope IMAP offline"
    )


def test_the_secrets_of_an_msal_token_cache_are_masked() -> None:
    cache = {
        "RefreshToken": {"uid.tid-login-rt-app": {"credential_type": "RefreshToken", "secret": "rt-SECRET-1"}},
        "AccessToken": {"uid.tid-login-at-app": {"credential_type": "AccessToken", "secret": "at-SECRET-2"}},
        "Account": {"uid.tid-login": {"username": "alice@contoso.example"}},
        "AppMetadata": {"appmetadata-login-app": {"client_id": "app", "family_id": ""}},  # blank: masks nothing
    }
    masked = redact_secret("rt-SECRET-1 / at-SECRET-2 for alice@contoso.example", json.dumps(cache))
    assert masked == f"{MASK} / {MASK} for alice@contoso.example"


def test_a_secret_that_looks_like_json_but_is_not_is_masked_whole() -> None:
    assert redact_secret("got {not json XYZZY", "{not json XYZZY") == f"got {MASK}"


def test_an_unexpected_error_carrying_the_secret_is_replaced() -> None:
    error = redacted_error(KeyError(f"no entry {SECRET}"), SECRET)
    assert isinstance(error, RedactedError)
    assert str(error) == f"KeyError: 'no entry {MASK}'"


def test_a_failure_is_masked_before_it_is_cut_to_the_column(database_url: str, tmp_path: Path) -> None:
    """``last_error`` keeps 2,000 characters: a secret across that cut must not leave its first half behind.
    (``record_failure`` masks on its own: the workers record a bug's text there too.)"""
    key = generate_key()
    app = bootstrap(make_settings(database_url, tmp_path / "data", secret_keys=(key,)))
    try:
        upgrade(app.engine)
        with transaction(app.sessions) as session:
            mailbox_id = mailboxes.add_mailbox(session, "m", REP, IMAP, "Sup3rS3cret-XYZZY", (key,)).id
        record_failure(app, mailbox_id, "x" * 1990 + " Sup3rS3cret-XYZZY then more", permanent=True)
        assert _last_error(app, mailbox_id) == "x" * 1990 + f" {MASK} then "
        # a secret no configured key decrypts: nothing to mask (no connector had it), and still recorded
        without_key = replace(app, settings=replace(app.settings, secret_keys=(generate_key(),)))
        assert record_failure(without_key, mailbox_id, "cannot decrypt", permanent=True) == "failed"
        assert _last_error(app, mailbox_id) == "cannot decrypt"
    finally:
        app.close()


def _last_error(app: App, mailbox_id: int) -> str | None:
    with app.sessions() as session:
        return session.get_one(Mailbox, mailbox_id).last_error

"""EwsConnector — mail and contacts folders, errors and throttling — running the real exchangelib code
against the loopback EWS server."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync_service.connectors.base import ChangePage, Connector
from sync_service.connectors.ews import EwsConnector
from sync_service.connectors.registry import needs_secret, open_connector
from sync_service.errors import ConfigError, PermanentSourceError, TransientSourceError
from sync_service.parsing.vcard import parse_vcards
from tests.support.builders import REP, REP2, message
from tests.support.ews_server import SVC_LOGIN, SVC_PASSWORD, SVC_TOKEN, EwsServer, url_for
from tests.support.ews_store import Person


def _mail(n: int) -> bytes:
    return message(f"m{n}@acme.example", "wile@acme.example", [REP], f"Message {n}")


def _connector(
    server: EwsServer, mailbox: str = REP, secret: str = SVC_PASSWORD, login: str = SVC_LOGIN, **options: str
) -> EwsConnector:
    conn = open_connector(url_for(server, mailbox, login, **options), secret)
    assert isinstance(conn, EwsConnector) and isinstance(conn, Connector)
    return conn


@pytest.fixture
def conn(ews_server: EwsServer) -> Iterator[EwsConnector]:
    connector = _connector(ews_server)
    yield connector
    connector.close()


def _drain(conn: EwsConnector, folder: str, cursor: str | None = None, limit: int = 500) -> list[ChangePage]:
    pages = []
    while True:
        page = conn.list_changes(folder, cursor, limit)
        pages.append(page)
        cursor = page.next_cursor
        if not page.more:
            return pages


def test_registered_and_needs_a_secret(ews_server: EwsServer) -> None:
    url = url_for(ews_server, REP)
    assert needs_secret(url)
    with pytest.raises(ConfigError, match="needs a secret"):
        open_connector(url, None)
    assert _connector(ews_server).folders() == ["inbox", "sent", "calendar", "contacts"]
    assert _connector(ews_server, folders="inbox,contacts").folders() == ["inbox", "contacts"]


def test_pages_follow_max_changes_and_each_cursor_covers_its_page(ews_server: EwsServer, conn: EwsConnector) -> None:
    ids = [ews_server.store.add(REP, "inbox", "message", mime=_mail(n)) for n in range(5)]
    first = conn.list_changes("inbox", None, limit=2)
    assert len(first.upserts) == 2 and first.more and not first.full_resync
    again = conn.list_changes("inbox", first.next_cursor, limit=2)
    replay = conn.list_changes("inbox", first.next_cursor, limit=2)  # the pipeline crashed before storing `again`
    assert [r.external_id for r in again.upserts] == [r.external_id for r in replay.upserts]
    last = conn.list_changes("inbox", again.next_cursor, limit=2)
    assert len(last.upserts) == 1 and not last.more
    listed = [r.external_id for p in (first, again, last) for r in p.upserts]
    assert sorted(listed) == sorted(ids) and all(
        r.kind == "message" and r.version for p in (first, last) for r in p.upserts
    )
    assert conn.list_changes("inbox", last.next_cursor).upserts == ()
    assert ews_server.operations().count("SyncFolderItems") == 5


def test_fetch_returns_the_mime_bytes_and_skips_vanished_items(ews_server: EwsServer, conn: EwsConnector) -> None:
    raws = [_mail(n) for n in range(3)]
    ids = [ews_server.store.add(REP, "inbox", "message", mime=raw) for raw in raws]
    page = conn.list_changes("inbox", None)
    ews_server.store.delete(ids[1])
    fetched = {r.ref.external_id: r.data for r in conn.fetch("inbox", page.upserts)}
    assert fetched == {ids[0]: raws[0], ids[2]: raws[2]}
    assert list(conn.fetch("inbox", [])) == []


def test_creates_updates_deletes_and_read_flags(ews_server: EwsServer, conn: EwsConnector) -> None:
    store = ews_server.store
    keep, change, gone, read = (store.add(REP, "inbox", "message", mime=_mail(n)) for n in range(4))
    cursor = _drain(conn, "inbox")[-1].next_cursor
    new = store.add(REP, "inbox", "message", mime=_mail(9))
    store.update(change, mime=_mail(99))
    store.delete(gone)
    store.set_read(read)
    page = conn.list_changes("inbox", cursor)
    versions = {r.external_id: r.version for r in page.upserts}
    assert set(versions) == {new, change} and page.deletes == (gone,)  # the read flag alone refetches nothing
    assert versions[change] == "CQAAAB2"
    assert [r.data for r in conn.fetch("inbox", page.upserts) if r.ref.external_id == change] == [_mail(99)]
    assert keep not in versions and conn.list_changes("inbox", page.next_cursor).upserts == ()


def test_invalid_sync_state_lists_everything_again_as_a_full_resync(ews_server: EwsServer, conn: EwsConnector) -> None:
    ids = {ews_server.store.add(REP, "sentitems", "message", mime=_mail(n)) for n in range(3)}
    cursor = _drain(conn, "sent")[-1].next_cursor
    ews_server.store.invalidate_sync_states()
    pages = _drain(conn, "sent", cursor, limit=2)
    assert pages[0].full_resync and not any(p.full_resync for p in pages[1:])
    assert {r.external_id for p in pages for r in p.upserts} == ids  # the same ids: the pipeline dedupes them
    foreign = conn.list_changes("sent", "fs1.not-an-ews-cursor")
    assert foreign.full_resync and {r.external_id for r in foreign.upserts} == ids


def test_server_busy_is_transient_with_the_back_off_and_no_sleep(ews_server: EwsServer, conn: EwsConnector) -> None:
    ews_server.store.add(REP, "inbox", "message", mime=_mail(1))
    cursor = conn.list_changes("inbox", None).next_cursor
    ews_server.store.add(REP, "inbox", "message", mime=_mail(2))
    ews_server.throttle(times=1, back_off_ms=297_749, operation="SyncFolderItems")
    with pytest.raises(TransientSourceError) as caught:
        conn.list_changes("inbox", cursor)
    assert caught.value.retry_after == pytest.approx(297.749)  # exchangelib did not sleep it away (FailFast)
    assert ews_server.operations()[-1] == "SyncFolderItems"
    page = conn.list_changes("inbox", cursor)  # the cursor did not move: the change is still there
    assert len(page.upserts) == 1
    ews_server.throttle(times=1, back_off_ms=2000, operation="GetItem")
    with pytest.raises(TransientSourceError) as during_fetch:
        list(conn.fetch("inbox", page.upserts))
    assert during_fetch.value.retry_after == pytest.approx(2.0)


def test_server_busy_on_the_first_request_is_throttling_with_the_back_off(ews_server: EwsServer) -> None:
    ews_server.store.add(REP, "inbox", "message", mime=_mail(1))
    ews_server.throttle(times=1, back_off_ms=4321)  # every sync's first request: exchangelib's version probe
    conn = _connector(ews_server)
    with pytest.raises(TransientSourceError, match=r"^Exchange is throttling this account \(ErrorServerBusy") as caught:
        conn.list_changes("inbox", None)
    assert "TransportError" not in str(caught.value)
    assert caught.value.retry_after == pytest.approx(4.321)
    assert ews_server.operations() == ["ConvertId"]
    conn.close()
    retry = _connector(ews_server)
    assert len(retry.list_changes("inbox", None).upserts) == 1
    retry.close()


def test_credentials_and_rights_are_permanent_failures(ews_server: EwsServer) -> None:
    with pytest.raises(PermanentSourceError, match="credentials"):
        _connector(ews_server, secret="wrong").list_changes("inbox", None)
    with pytest.raises(PermanentSourceError, match="ErrorImpersonateUserDenied"):
        _connector(ews_server, login="nobody", secret="pw").list_changes("inbox", None)
    with pytest.raises(PermanentSourceError, match="ErrorNonExistentMailbox"):
        _connector(ews_server, mailbox="ghost@northwind-sales.example").list_changes("inbox", None)
    with pytest.raises(PermanentSourceError, match="no folder"):
        _connector(ews_server, folders="inbox").list_changes("contacts", None)


def test_impersonation_delegation_and_oauth_tokens(ews_server: EwsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    ews_server.store.add(REP2, "inbox", "message", mime=_mail(1))
    assert len(_connector(ews_server, REP2).list_changes("inbox", None).upserts) == 1
    mailbox_requests = [r for r in ews_server.requests if r.operation != "ConvertId"]
    assert mailbox_requests and {(r.user, r.impersonated) for r in mailbox_requests} == {(SVC_LOGIN, REP2)}
    ews_server.requests.clear()
    delegate = open_connector(url_for(ews_server, "", mailbox=REP2), SVC_PASSWORD)
    assert len(delegate.list_changes("inbox", None).upserts) == 1
    assert {(r.impersonated, r.mailbox) for r in ews_server.requests if r.operation == "GetFolder"} == {(None, REP2)}
    with pytest.raises(ConfigError, match="OAuth needs TLS"):  # oauthlib sends tokens over TLS only…
        open_connector(url_for(ews_server, REP2, auth="oauth"), SVC_TOKEN)
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # …except on this loopback test server
    oauth = open_connector(url_for(ews_server, REP2, auth="oauth"), SVC_TOKEN)
    assert len(oauth.list_changes("inbox", None).upserts) == 1
    with pytest.raises(PermanentSourceError):
        open_connector(url_for(ews_server, REP2, auth="oauth"), "expired-token").list_changes("inbox", None)


def test_oauth_over_plain_http_is_a_configuration_error(ews_server: EwsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the URL check passes; oauthlib still refuses at send
    conn = open_connector(url_for(ews_server, REP2, auth="oauth"), SVC_TOKEN)
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT")
    with pytest.raises(ConfigError, match="OAuth needs TLS") as caught:
        conn.list_changes("inbox", None)
    assert not isinstance(caught.value, PermanentSourceError) and "credentials" not in str(caught.value)
    conn.close()


def test_every_request_has_a_timeout() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections (the kernel does) but never answers
    port = listener.getsockname()[1]
    try:
        conn = open_connector(
            f"ews://svc@127.0.0.1:{port}/EWS/Exchange.asmx?auth=basic&tls=0&impersonate={REP}&timeout=1", "pw"
        )
        started = time.monotonic()
        with pytest.raises(TransientSourceError):
            conn.list_changes("inbox", None)
        assert time.monotonic() - started < 30  # bounded by the 1 s timeout, not exchangelib's 120 s default
    finally:
        listener.close()


def test_contacts_become_vcards(ews_server: EwsServer, conn: EwsConnector) -> None:
    person = Person(
        given="Road",
        middle="R.",
        surname="Runner",
        company="ACME",
        job_title="Buyer",
        emails=("road@acme.example", "/o=ExchangeLabs/ou=Exchange/cn=Recipients/cn=rr", "rr@gmail.com"),
        phones=(("BusinessPhone", "+1 202 555 0111"), ("MobilePhone", "+1 202 555 0112")),
    )
    contact_id = ews_server.store.add(REP, "contacts", "contact", person=person)
    page = conn.list_changes("contacts", None)
    assert [(r.external_id, r.kind) for r in page.upserts] == [(contact_id, "contacts")]
    [raw] = list(conn.fetch("contacts", page.upserts))
    cards, problems = parse_vcards(raw.data)
    assert problems == [] and len(cards) == 1
    card = cards[0]
    assert (card.full_name, card.first_name, card.middle_name, card.last_name) == (
        "Road R. Runner",
        "Road",
        "R.",
        "Runner",
    )
    assert (card.company, card.job_title) == ("ACME", "Buyer")
    assert card.emails == ("road@acme.example", "rr@gmail.com")  # the X.500 address is not an email
    assert card.phones == (("work", "+1 202 555 0111"), ("cell", "+1 202 555 0112"))
    ews_server.store.update(contact_id, person=Person(given="Road", surname="Runner", emails=("road@acme.example",)))
    changed = conn.list_changes("contacts", page.next_cursor)
    assert [r.version for r in changed.upserts] == ["EQAAAB2"]


def test_ntlm_handshake(ews_server: EwsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    users = tmp_path / "ntlm-users"
    users.write_text(f"CONTOSO:{SVC_LOGIN}:{SVC_PASSWORD}\n", encoding="utf-8")
    monkeypatch.setenv("NTLM_USER_FILE", str(users))
    ews_server.ntlm = True
    ews_server.store.add(REP, "inbox", "message", mime=_mail(1))
    ntlm = open_connector(url_for(ews_server, REP, login=f"CONTOSO%5C{SVC_LOGIN}", auth="ntlm"), SVC_PASSWORD)
    page = ntlm.list_changes("inbox", None)
    assert len(page.upserts) == 1 and len(list(ntlm.fetch("inbox", page.upserts))) == 1
    assert {r.user for r in ews_server.requests} == {SVC_LOGIN}
    ntlm.close()
    with pytest.raises(PermanentSourceError, match="credentials"):
        bad = open_connector(url_for(ews_server, REP, login=f"CONTOSO%5C{SVC_LOGIN}", auth="ntlm"), "wrong")
        bad.list_changes("inbox", None)

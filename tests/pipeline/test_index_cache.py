"""A process keeps its candidate index between processing runs and reuses it exactly while nothing the index
is read from has changed (``pipeline.index_cache``, ``crm_store.index_changes``): every kind of write to
those tables, by any connection, is noticed; writes elsewhere are not."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, text

from crm_store import index_changes
from crm_store.db import make_engine, transaction
from sync_service.bootstrap import App
from sync_service.matching.load import build_index
from sync_service.matching.model import CandidateIndex
from sync_service.pipeline import index_cache
from sync_service.pipeline.index_cache import IndexCache, cache_for
from sync_service.pipeline.process import process_pending
from tests.support.builders import REP, maildir, message

INTERNAL = frozenset({"northwind-sales.example"})


@pytest.fixture
def other(app: App) -> Iterator[Engine]:
    """Another process's connection to the same database: an admin, another worker, the CLI."""
    engine = make_engine(app.settings.database_url)
    yield engine
    engine.dispose()


def _fresh(app: App) -> CandidateIndex:
    with app.sessions() as session:
        return build_index(session, INTERNAL, "US", threads=False)


def _kept(app: App, cache: IndexCache) -> CandidateIndex:
    with app.sessions() as session:
        return cache.index(session, INTERNAL, "US")


def _write(engine: Engine, *statements: str, **params: object) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement), {k: v for k, v in params.items() if f":{k}" in statement})


# Writes to what the index is read from, as plain SQL (no ORM, no application code): each must be noticed.
CHANGES: dict[str, tuple[str, ...]] = {
    "a new rep": ("INSERT INTO users (email, name, created_at) VALUES ('carol@northwind-sales.example', '', :now)",),
    "a rep's address": ("UPDATE users SET email = 'alice@northwind.example' WHERE id = :alice",),
    "a never-log entry": ("INSERT INTO never_log (value) VALUES ('acme.example')",),
    "an account's new domain": ("INSERT INTO account_domains (account_id, domain) VALUES (:acme, 'acme.test')",),
    "a domain moved to another account": ("UPDATE account_domains SET account_id = :globex WHERE account_id = :acme",),
    "a domain removed": ("DELETE FROM account_domains WHERE account_id = :globex",),
    "a contact's account": ("UPDATE contacts SET account_id = :acme WHERE id = :hank",),
    "a contact deleted": ("DELETE FROM contacts WHERE id = :mindy",),
    "a contact's new address": (
        "INSERT INTO contact_emails (contact_id, email, position) VALUES (:mindy, 'mindy@acme.example', 1)",
    ),
    "a contact's address changed": ("UPDATE contact_emails SET email = 'hank@acme.example' WHERE contact_id = :hank",),
    "a new contact with an address": (
        "INSERT INTO contacts (name, first_name, middle_name, last_name, company, job_title, account_id, source,"
        " created_at) VALUES ('Road Runner', '', '', '', '', '', :acme, 'user', :now)",
        "INSERT INTO contact_emails (contact_id, email, position)"
        " SELECT id, 'Road.Runner@ACME.example', 0 FROM contacts WHERE name = 'Road Runner'",
    ),
    "a new lead's address": (
        "INSERT INTO leads (name, company, status, origin, created_at)"
        " VALUES ('Bill', 'Initech', 'Initial Lead', 'user', :now)",
        "INSERT INTO lead_emails (lead_id, email, position) SELECT id, 'bill@initech.example', 0 FROM leads"
        " WHERE name = 'Bill'",
    ),
    "a contact's phone": (
        "INSERT INTO contact_phones (contact_id, kind, raw, e164) VALUES (:wile, 'work', '555', '+12025550100')",
    ),
    "a lead deleted": ("DELETE FROM leads WHERE id = :lead",),
    "a lead's address": ("UPDATE lead_emails SET email = 'rita@initech.example' WHERE lead_id = :lead",),
    "a lead's phone": ("INSERT INTO lead_phones (lead_id, raw, e164) VALUES (:lead, '555', '+12025550101')",),
    "an opportunity won": ("UPDATE opportunities SET status = 'won' WHERE id = :rockets",),
    "an opportunity's account": ("UPDATE opportunities SET account_id = :acme WHERE id = :lamp",),
    "a participant added": (
        "INSERT INTO opportunity_participants (opportunity_id, contact_id) VALUES (:rockets, :hank)",
    ),
    "a participant removed": ("DELETE FROM opportunity_participants WHERE opportunity_id = :domes",),
}

# Of those, the ones processing runs make: the kept index takes the new rows instead of being read again.
ADDED_ROWS = {"a contact's new address", "a new contact with an address", "a new lead's address"}

# Writes to other columns and tables: the kept index stays.
NOT_CHANGES: dict[str, tuple[str, ...]] = {
    "a contact renamed": ("UPDATE contacts SET name = 'W. E. Coyote', job_title = 'Genius' WHERE id = :wile",),
    "an opportunity's stage": ("UPDATE opportunities SET stage = 'Negotiations', amount = 5000 WHERE id = :rockets",),
    "a rep renamed": ("UPDATE users SET name = 'Alice A.' WHERE id = :alice",),
    "an account renamed": ("UPDATE accounts SET name = 'ACME Corp' WHERE id = :acme",),
    "a lead's status": ("UPDATE leads SET status = 'Qualified' WHERE id = :lead",),
}


def _params(crm: dict[str, int]) -> dict[str, object]:
    return {**crm, "now": "2026-11-25 00:00:00"}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_every_write_to_what_the_index_reads_is_noticed(
    app: App, crm: dict[str, int], other: Engine, change: str
) -> None:
    cache = IndexCache()
    before = _kept(app, cache)
    assert before == _fresh(app) and cache.builds == 1
    _write(other, *CHANGES[change], **_params(crm))
    after = _kept(app, cache)
    assert cache.hits == 0, change
    assert (cache.builds, cache.patches) == ((1, 1) if change in ADDED_ROWS else (2, 0)), change
    assert after == _fresh(app) and after != before, change


@pytest.mark.parametrize("change", sorted(NOT_CHANGES))
def test_other_writes_keep_the_index(app: App, crm: dict[str, int], other: Engine, change: str) -> None:
    cache = IndexCache()
    _kept(app, cache)
    _write(other, *NOT_CHANGES[change], **_params(crm))
    assert _kept(app, cache) == _fresh(app)
    assert (cache.builds, cache.hits) == (1, 1), change


def test_an_account_deleted_with_its_domains_is_noticed(app: App, crm: dict[str, int], other: Engine) -> None:
    """The domains go by the foreign key's cascade, not by a statement on their table: its triggers fire."""
    _write(
        other,
        "INSERT INTO accounts (name, name_key, type, created_at) VALUES ('Initech', 'initech', 'prospect', :now)",
        **_params(crm),
    )
    with other.begin() as connection:
        initech = connection.scalar(text("SELECT id FROM accounts WHERE name_key = 'initech'"))
    _write(
        other, "INSERT INTO account_domains (account_id, domain) VALUES (:initech, 'initech.example')", initech=initech
    )
    cache = IndexCache()
    assert "initech.example" in _kept(app, cache).account_by_domain
    _write(other, "DELETE FROM accounts WHERE id = :initech", initech=initech)
    assert "initech.example" not in _kept(app, cache).account_by_domain
    assert cache.builds == 2


def test_a_write_committed_while_the_index_was_read_is_noticed_after(
    app: App, crm: dict[str, int], other: Engine
) -> None:
    """A transaction open (its write not yet visible) when the index is read commits afterwards: the next run
    must see its write, on both backends (SQLite in WAL mode reads beside an open writer)."""
    cache = IndexCache()
    with other.connect() as writer:
        writer.execute(
            text(
                "INSERT INTO contact_emails (contact_id, email, position) VALUES (:mindy, 'mindy@initech.example', 1)"
            ),
            {"mindy": crm["mindy"]},
        )
        during = _kept(app, cache)
        assert "mindy@initech.example" not in during.contacts_by_email
        writer.commit()
    after = _kept(app, cache)
    assert after.contacts_by_email["mindy@initech.example"] == (crm["mindy"],)
    assert after == _fresh(app) and (cache.builds, cache.patches) == (1, 1)


def test_an_address_committed_late_with_a_lower_id_is_added(app: App, crm: dict[str, int], other: Engine) -> None:
    """PostgreSQL takes ids before commit: a row with a lower id than one the kept index already took can
    commit after it. It is found by its transaction, not by its id. (SQLite: one writer at a time.)"""
    cache = IndexCache()
    _kept(app, cache)
    add = "INSERT INTO contact_emails (contact_id, email, position) VALUES (:c, :e, 1)"
    with other.connect() as slow:
        slow.execute(text(add), {"c": crm["mindy"], "e": "mindy@slow.example"})
        if app.engine.dialect.name == "postgresql":
            _write(other, add, c=crm["hank"], e="hank@fast.example")  # a higher id, committed first
            first = _kept(app, cache)
            assert first.contacts_by_email["hank@fast.example"] == (crm["hank"],)
            assert "mindy@slow.example" not in first.contacts_by_email
        slow.commit()
    second = _kept(app, cache)
    assert second.contacts_by_email["mindy@slow.example"] == (crm["mindy"],)
    assert second == _fresh(app) and cache.builds == 1 and cache.patches >= 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_writes_leave_the_kept_index_equal_to_a_new_one(
    app: App, crm: dict[str, int], other: Engine, seed: int
) -> None:
    """Random new contacts (with one or two addresses, some shared with another contact, in any case),
    addresses and leads' addresses — what runs add — mixed with some other writes: after each, the kept
    index equals one read from scratch, and most were followed by adding rows rather than reading again."""
    import random

    rng = random.Random(seed)
    cache = IndexCache()
    _kept(app, cache)
    accounts = [crm["acme"], crm["globex"], None]
    with other.begin() as connection:
        leads = [crm["lead"]]
    for step in range(40):
        with other.begin() as connection:
            for _ in range(rng.randint(1, 3)):
                roll = rng.random()
                address = rng.choice(["wile@acme.example", f"p{step}@acme.example", f"P{step}@Globex.example"])
                if roll < 0.4:
                    contact = connection.execute(
                        text(
                            "INSERT INTO contacts (name, first_name, middle_name, last_name, company, job_title,"
                            " account_id, source, created_at) VALUES (:n, '', '', '', '', '', :a, 'sync', :now)"
                            " RETURNING id"
                        ),
                        {"n": f"Person {step}", "a": rng.choice(accounts), "now": "2026-11-25 00:00:00"},
                    ).scalar_one()
                    connection.execute(
                        text("INSERT INTO contact_emails (contact_id, email, position) VALUES (:c, :e, 0)"),
                        {"c": contact, "e": address},
                    )
                elif roll < 0.7:
                    connection.execute(
                        text(
                            "INSERT INTO lead_emails (lead_id, email, position) VALUES (:l, :e, :p)"
                            " ON CONFLICT DO NOTHING"
                        ),
                        {"l": rng.choice(leads), "e": address.replace("acme", "initrode"), "p": step + 1},
                    )
                elif roll < 0.9:
                    connection.execute(
                        text(
                            "INSERT INTO contact_emails (contact_id, email, position) VALUES (:c, :e, :p)"
                            " ON CONFLICT DO NOTHING"
                        ),
                        {"c": rng.choice([crm["wile"], crm["hank"], crm["mindy"]]), "e": address, "p": step + 1},
                    )
                else:  # not what a run adds: the index is read again
                    connection.execute(
                        text("UPDATE contacts SET account_id = :a WHERE id = :c"),
                        {"a": rng.choice(accounts), "c": rng.choice([crm["hank"], crm["mindy"]])},
                    )
        assert _kept(app, cache) == _fresh(app), step
    assert cache.patches > cache.builds


def test_a_write_after_a_rolled_back_savepoint_is_noticed(app: App, crm: dict[str, int], other: Engine) -> None:
    """PostgreSQL records a transaction once (a transaction-local setting says it did): a savepoint rolled
    back takes the record and the setting with it, so the transaction's next write records it again."""
    cache = IndexCache()
    _kept(app, cache)
    with other.connect() as writer, writer.begin():
        savepoint = writer.begin_nested()
        writer.execute(text("UPDATE contacts SET account_id = :acme WHERE id = :hank"), crm)
        savepoint.rollback()
        writer.execute(text("UPDATE contact_emails SET email = 'mindy@initech.example' WHERE contact_id = :mindy"), crm)
    after = _kept(app, cache)
    assert cache.builds == 2 and after == _fresh(app)
    assert after.contacts_by_email["mindy@initech.example"] == (crm["mindy"],)


def test_a_rolled_back_write_keeps_the_index(app: App, crm: dict[str, int], other: Engine) -> None:
    cache = IndexCache()
    _kept(app, cache)
    with other.connect() as writer:
        writer.execute(text("DELETE FROM contacts WHERE id = :mindy"), {"mindy": crm["mindy"]})
        writer.rollback()
    assert _kept(app, cache) == _fresh(app)
    assert (cache.builds, cache.hits) == (1, 1)


def test_a_kept_index_is_rebuilt_for_other_settings_and_when_old(
    app: App, crm: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = IndexCache()
    _kept(app, cache)
    with app.sessions() as session:
        other_region = cache.index(session, INTERNAL, "DE")
    assert other_region.default_region == "DE" and cache.builds == 2
    monkeypatch.setattr(index_cache, "MAX_AGE_SECONDS", 0.0)
    with app.sessions() as session:
        cache.index(session, INTERNAL, "DE")
    assert (cache.builds, cache.hits) == (3, 0)


def test_what_a_run_adds_stays_out_of_the_kept_index(app: App, crm: dict[str, int]) -> None:
    cache = IndexCache()
    first = _kept(app, cache)
    first.contacts_by_email["new@acme.example"] = (999,)
    first.contact_account[999] = crm["acme"]
    first.leads_by_email["new@initech.example"] = (998,)
    first.thread_opportunity["<m1@x>"] = crm["rockets"]
    second = _kept(app, cache)
    assert cache.hits == 1
    assert second == _fresh(app)
    assert "new@acme.example" not in second.contacts_by_email and 999 not in second.contact_account
    assert not second.leads_by_email.keys() & {"new@initech.example"} and not second.thread_opportunity


def test_without_the_triggers_the_index_is_built_for_every_run(app: App, crm: dict[str, int]) -> None:
    """A database made without the migrations (``create_all``) has no change record: nothing is kept."""
    with app.engine.begin() as connection:
        assert index_changes.installed(connection)
        for statement in index_changes.uninstall_sql(connection.dialect.name):
            connection.execute(text(statement))
        assert not index_changes.installed(connection)
    cache = IndexCache()
    assert _kept(app, cache) == _kept(app, cache) == _fresh(app)
    assert (cache.builds, cache.hits) == (0, 0)  # built directly, never kept


def test_a_change_record_dropped_under_a_kept_index_means_reading_the_crm(
    app: App, crm: dict[str, int], other: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """An admin drops the record while a process keeps an index: the next run reads the CRM (and warns)."""
    cache = IndexCache()
    _kept(app, cache)
    _write(other, "UPDATE contacts SET account_id = :acme WHERE id = :hank", **crm)
    with other.begin() as connection:
        for statement in index_changes.uninstall_sql(connection.dialect.name):
            connection.execute(text(statement))
    assert _kept(app, cache) == _fresh(app)
    assert _fresh(app).contact_account[crm["hank"]] == crm["acme"]
    assert "could not read the CRM change record" in caplog.text
    assert "triggers are missing" in caplog.text
    assert _kept(app, cache) == _fresh(app) and cache.hits == 0


def test_a_role_granted_nothing_on_the_record_still_writes_contacts(app: App, crm: dict[str, int]) -> None:
    """PostgreSQL: the trigger writes the record with its owner's rights, so a role that may change contacts
    (an admin's, a reporting tool's) needs no grant on it — and its change is noticed."""
    if app.engine.dialect.name != "postgresql":
        pytest.skip("roles and grants are PostgreSQL's")
    role = f"clerk_{crm['wile']}_{id(app) % 100000}"
    with app.engine.begin() as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN"))
        connection.execute(text(f"GRANT SELECT, UPDATE ON contacts TO {role}"))
    cache = IndexCache()
    _kept(app, cache)
    clerk = make_engine(app.engine.url.set(username=role).render_as_string(hide_password=False))
    try:
        _write(clerk, "UPDATE contacts SET account_id = :acme WHERE id = :hank", **crm)
    finally:
        clerk.dispose()
        with app.engine.begin() as connection:
            connection.execute(text(f"REVOKE ALL ON contacts FROM {role}"))
            connection.execute(text(f"DROP ROLE {role}"))
    assert _kept(app, cache).contact_account[crm["hank"]] == crm["acme"]
    assert cache.builds == 2


def test_the_watched_columns_are_those_the_index_reads(app: App, crm: dict[str, int]) -> None:
    """``WATCHED`` names exactly the tables and columns ``build_index`` selects: a column added to the index
    and not watched would go stale unnoticed."""
    sent: list[str] = []
    listen = event.listens_for(app.engine, "before_cursor_execute")(lambda *a: sent.append(a[2]))
    try:
        _fresh(app)
    finally:
        event.remove(app.engine, "before_cursor_execute", listen)
    read: dict[str, set[str]] = {}
    for statement in sent:
        for table, column in re.findall(r"\b([a-z_]+)\.([a-z_0-9]+)\b", statement.split(" FROM ")[0]):
            read.setdefault(table, set()).add(column)
    assert read == {table: set(columns) for table, columns in index_changes.WATCHED.items()}


def test_runs_reuse_the_index_until_the_crm_changes(
    app: App,
    crm: dict[str, int],
    add_mailbox,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """Processing runs on one engine: a run of known people's mail keeps the index; a run that makes a
    contact changes the CRM, and the run after it adds that contact's rows to the kept index — and finds it."""
    cache = cache_for(app.engine)
    box = tmp_path / "alice"
    add_mailbox("alice", maildir(box, [message("k1@acme.example", "wile@acme.example", [REP], "Rockets")]))
    from sync_service.connectors.registry import open_connector
    from sync_service.pipeline.fetch import sync_folder

    def deliver(mid: str, sender: str) -> None:
        (box / "new" / f"{mid}.eml").write_bytes(message(mid, sender, [REP], "Quote"))
        with app.sessions() as session:
            mailbox_id = session.scalar(text("SELECT id FROM mailboxes WHERE name = 'alice'"))
        sync_folder(app, mailbox_id, open_connector(f"maildir://{box}"), ".")

    deliver("k0@acme.example", "wile@acme.example")
    builds = cache.builds
    assert process_pending(app).logged == 2
    assert cache.builds == builds + 1
    deliver("k2@acme.example", "wile@acme.example")  # a known contact: the CRM does not change
    assert process_pending(app).logged == 1
    assert (cache.builds, cache.hits) == (builds + 1, 1)
    deliver("k3@acme.example", "road.runner@acme.example")  # a new person at ACME: a new contact
    stats = process_pending(app)
    assert stats.logged == 1 and stats.contacts_created == 1
    assert (cache.builds, cache.hits) == (builds + 1, 2)
    deliver("k4@acme.example", "road.runner@acme.example")
    stats = process_pending(app)
    assert stats.logged == 1 and stats.contacts_created == 0  # the index, with the new rows, has the contact
    assert (cache.builds, cache.hits, cache.patches) == (builds + 1, 2, 1)
    with transaction(app.sessions) as session:
        count = session.scalar(text("SELECT count(*) FROM contact_emails WHERE email = 'road.runner@acme.example'"))
    assert count == 1


def test_postgresql_prunes_old_changes_only(app: App, crm: dict[str, int]) -> None:
    if app.engine.dialect.name != "postgresql":
        with app.engine.begin() as connection:
            assert index_changes.prune(connection, 0) == 0
        return
    with app.engine.begin() as connection:
        connection.execute(
            text(f"UPDATE {index_changes.CHANGES_TABLE} SET changed_at = changed_at - interval '2 days'")
        )
    _write(app.engine, "UPDATE contacts SET account_id = NULL WHERE id = :mindy", mindy=crm["mindy"])
    with app.engine.begin() as connection:
        before = connection.scalar(text(f"SELECT count(*) FROM {index_changes.CHANGES_TABLE}"))
        gone = index_changes.prune(connection, 86_400)
        after = connection.scalar(text(f"SELECT count(*) FROM {index_changes.CHANGES_TABLE}"))
    assert gone >= 1 and after == 1 and before == gone + 1

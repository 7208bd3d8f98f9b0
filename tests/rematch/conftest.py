"""A CRM built through the CLI, and a mailbox synced through it: the world of the re-matching tests.

CRM (imported from CSV): ACME (acme.example) with contact Wile; Globex (globex.example) with contacts Hank and
Mindy and two open opportunities, "Lamps" (participant Hank) and "Domes" (no participant yet).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.builders import REP

ACCOUNTS = (
    "Name,Type,Domains,Territory,Owner\n"
    "ACME,customer,acme.example,West,{rep}\n"
    "Globex,prospect,globex.example,East,{rep}\n"
)
CONTACTS = (
    "First Name,Last Name,Company,E-mail Address\n"
    "Wile,Coyote,ACME,wile@acme.example\n"
    "Hank,Scorpio,Globex,hank@globex.example\n"
    "Mindy,Globex,Globex,mindy@globex.example\n"
)
OPPORTUNITIES = (
    "Title,Account,Stage,Owner,Contacts,Amount,Close Date,Source\n"
    "Lamps,Globex,Qualification,{rep},hank@globex.example,,,\n"
    "Domes,Globex,Negotiations,{rep},{domes},,,\n"
)


def write_csv(directory: Path, name: str, text: str, **values: str) -> Path:
    path = directory / name
    path.write_text(text.format(rep=REP, **values), encoding="utf-8")
    return path


def ok(result: Any) -> Any:
    assert result.code == 0, (result.out, result.err)
    return result


def exported(cli: Callable[..., Any], kind: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(ok(cli("export", kind, "--format", "json")).out)
    return data


@pytest.fixture
def world(cli, tmp_path: Path) -> Callable[..., Any]:  # type: ignore[no-untyped-def]
    """An initialised database with the accounts imported; returns ``cli``."""
    ok(cli("init"))
    ok(cli("import", "accounts", str(write_csv(tmp_path, "accounts.csv", ACCOUNTS))))
    return cli  # type: ignore[no-any-return]


@pytest.fixture
def import_crm(world, tmp_path: Path) -> Callable[..., Any]:  # type: ignore[no-untyped-def]
    """``import_crm(domes="mindy@globex.example")``: contacts then opportunities; returns the last output."""

    def run(domes: str = "") -> str:
        ok(world("import", "contacts", str(write_csv(tmp_path, "contacts.csv", CONTACTS))))
        path = write_csv(tmp_path, "opportunities.csv", OPPORTUNITIES, domes=domes)
        return str(ok(world("import", "opportunities", str(path))).out)

    return run


@pytest.fixture
def synced(world, tmp_path: Path) -> Callable[[Path], str]:  # type: ignore[no-untyped-def]
    """``synced(maildir_path)``: add it as Alice's mailbox (once) and run `sync --once`; returns the output."""
    added: set[Path] = set()

    def run(path: Path) -> str:
        if path not in added:
            ok(world("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{path}"))
            added.add(path)
        return str(ok(world("sync", "--once")).out)

    return run


def by_subject(cli: Callable[..., Any]) -> dict[str, dict[str, Any]]:
    return {a["subject"]: a for a in exported(cli, "activities")}


def ids(cli: Callable[..., Any], kind: str, key: str = "name") -> dict[str, int]:
    return {row[key]: row["id"] for row in exported(cli, kind)}


# ------------------------------------------------------------------------------- pipeline-level fixtures


@pytest.fixture
def crm(app) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The seeded CRM of ``tests.support.builders.seed_crm`` (ids by name)."""
    from crm_store.db import transaction
    from tests.support.builders import seed_crm

    with transaction(app.sessions) as session:
        return seed_crm(session)


@pytest.fixture
def mailbox_of(app, tmp_path: Path) -> Callable[[list[bytes]], Path]:  # type: ignore[no-untyped-def]
    """``mailbox_of(messages)``: Alice's Maildir with these messages, added as a mailbox (once)."""
    from crm_store.db import transaction
    from sync_service import mailboxes
    from tests.support.builders import maildir

    path = tmp_path / "alice"

    def make(messages: list[bytes]) -> Path:
        new = not path.exists()
        maildir(path, messages)
        if new:
            with transaction(app.sessions) as session:
                mailboxes.add_mailbox(session, "alice", REP, f"maildir://{path}", None, ())
        return path

    return make

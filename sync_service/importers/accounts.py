"""Accounts CSV (SPEC §5): ``Name,Type,Domains,Territory,Owner``.

- ``Name`` is required and identifies the account case-insensitively (``Account.name_key``): a row for an
  existing account updates it, a row equal to what is stored leaves it unchanged.
- ``Type``: ``customer`` or ``prospect`` (any case); empty means ``prospect`` for a new account.
- ``Domains``: ``;``-separated; ``https://www.Acme.com/`` or ``@acme.com`` are accepted and stored as
  ``acme.com``; IDN domains are stored in Unicode lower case. A domain owned by another account, or listed
  for two accounts in the file, rejects the file. Domains are only ever added: an import never removes a
  domain that the row does not list (other domains may have been added by hand or by another file).
- ``Territory``: free text. ``Owner``: a rep's email; the rep becomes a user when new.
- Empty optional cells leave stored values alone.
- A column that looks like one of these but is misspelt (``Domain``, ``Teritory``) rejects the file; any other
  column is ignored and named in the summary (``headers``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import Account, AccountDomain
from sync_service.importers.csvfile import Row, SeenRows, at_line, iter_rows
from sync_service.importers.normalize import (
    account_domain,
    clean_text,
    name_key,
    optional_email,
    split_list,
)
from sync_service.importers.report import ImportReport, Outcome, apply_fields, outcome
from sync_service.importers.users import Reps
from sync_service.matching.domains import normalize_domain

COLUMNS = ("Name", "Type", "Domains", "Territory", "Owner")
TYPES = ("customer", "prospect")


@dataclass(frozen=True, slots=True)
class AccountRow:
    line: int
    name: str
    key: str
    type: str | None  # None: the cell was empty
    domains: tuple[str, ...]
    territory: str | None
    owner: str | None


def import_accounts(session: Session, path: Path) -> ImportReport:
    """Validate the whole file, then upsert each account. The caller commits or rolls back."""
    rows, ignored = _read(session, path)
    report = ImportReport("accounts", ignored_columns=ignored)
    reps = Reps(session)
    for row in rows:
        report.count(_write(session, row, reps))
    session.flush()
    return report


def _read(session: Session, path: Path) -> tuple[list[AccountRow], tuple[str, ...]]:
    """The file's rows, checked, and the columns it has that are none of ``COLUMNS``."""
    owners = _domain_owners(session)
    in_file: dict[str, tuple[str, int]] = {}  # domain → (account name, line)
    seen = SeenRows("account")
    rows = []
    found = iter_rows(path, COLUMNS, required=("Name",), lookalikes=True)
    for line, cells in found:
        with at_line(line):
            row = _parse(line, cells)
            seen.check([row.key])
            seen.add([row.key], f"line {line}")
            _check_domains(row, owners, in_file)
        rows.append(row)
    return rows, found.ignored


def _parse(line: int, cells: Row) -> AccountRow:
    name = clean_text(cells["Name"])
    if not name:
        raise ValueError("Name is empty")
    kind = cells["Type"].lower()
    if kind and kind not in TYPES:
        raise ValueError(f"Type must be 'customer' or 'prospect', not '{cells['Type']}'")
    domains = tuple(dict.fromkeys(account_domain(cell) for cell in split_list(cells["Domains"])))
    return AccountRow(
        line=line,
        name=name,
        key=name_key(name),
        type=kind or None,
        domains=domains,
        territory=clean_text(cells["Territory"]) or None,
        owner=optional_email(cells["Owner"]),
    )


def _domain_owners(session: Session) -> dict[str, tuple[str, str]]:
    """Every stored domain → (name_key, name) of the account owning it."""
    rows = session.execute(
        select(AccountDomain.domain, Account.name_key, Account.name).join(AccountDomain.account)
    )
    return {normalize_domain(domain): (key, name) for domain, key, name in rows}


def _check_domains(
    row: AccountRow, owners: dict[str, tuple[str, str]], in_file: dict[str, tuple[str, int]]
) -> None:
    for domain in row.domains:
        owner = owners.get(domain)
        if owner is not None and owner[0] != row.key:
            raise ValueError(f"domain '{domain}' already belongs to account '{owner[1]}'")
        earlier = in_file.get(domain)
        if earlier is not None:
            raise ValueError(f"domain '{domain}' is also listed for '{earlier[0]}' on line {earlier[1]}")
        in_file[domain] = (row.name, row.line)


def _write(session: Session, row: AccountRow, reps: Reps) -> Outcome:
    owner = reps.get(row.owner)
    account = session.scalars(select(Account).where(Account.name_key == row.key)).first()
    if account is None:
        session.add(
            Account(
                name=row.name,
                name_key=row.key,
                type=row.type or "prospect",
                territory=row.territory,
                owner=owner,
                domains=[AccountDomain(domain=domain) for domain in row.domains],
            )
        )
        return "created"
    changed = apply_fields(
        account, {"name": row.name, "type": row.type, "territory": row.territory, "owner": owner}
    )
    stored = {normalize_domain(d.domain) for d in account.domains}
    for domain in row.domains:
        if domain not in stored:
            account.domains.append(AccountDomain(domain=domain))
            changed = True
    return outcome(changed)

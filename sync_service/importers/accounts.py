"""Accounts CSV (SPEC §5): ``Name,Type,Domains,Territory,Owner``.

- ``Name`` is required and identifies the account case-insensitively (``Account.name_key``): a row for an
  existing account updates it, a row equal to what is stored leaves it unchanged.
- ``Type``: ``customer`` or ``prospect`` (any case); empty means ``prospect`` for a new account.
- ``Domains``: ``;``-separated; ``https://www.Acme.com/`` or ``@acme.com`` are accepted and stored as
  ``acme.com``; IDN domains are stored in Unicode lower case. The cell is the account's domain list
  (``master_list``): a domain it no longer lists is removed (imports are the only way domains are added), and
  the summary names it ("Globex lost domain globex.co"). An empty cell leaves the domains alone. All removals
  of the file happen before its additions, so a domain can move from one account's row to another's in one
  import. A domain owned by another account (unless that account's row in the file gives it up), or listed for
  two accounts in the file, rejects the file; when the row would create a new account, the error suggests
  ``crm-sync account rename`` (a renamed row is a new account: rows are keyed by Name).
- ``Territory``: free text. ``Owner``: a rep's email; the rep becomes a user when new.
- Empty optional cells leave stored values alone. An account created without domains gets a rename hint in the
  summary: it is what renaming an account in the file (with its domains left out) produces.
- A column that looks like one of these but is misspelt (``Domain``, ``Teritory``) rejects the file; any other
  column is ignored and named in the summary (``headers``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import Account, AccountDomain
from sync_service.importers.columns import fit
from sync_service.importers.csvfile import Row, SeenRows, at_line, iter_rows
from sync_service.importers.master_list import dropped, released
from sync_service.importers.normalize import (
    account_domain,
    clean_text,
    name_key,
    optional_email,
    split_list,
)
from sync_service.importers.report import ImportReport, apply_fields, outcome
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
    stored = {row.key: session.scalars(select(Account).where(Account.name_key == row.key)).first() for row in rows}
    # The whole file's removals first, flushed on their own (one flush inserts before it deletes, and a domain
    # is unique): a domain one row no longer lists may be another row's new domain.
    lost = {row.key: _drop_domains(account, row) for row in rows if (account := stored[row.key]) is not None}
    session.flush()
    claimed = {domain: row.name for row in rows for domain in row.domains}
    for row in rows:
        account = stored[row.key]
        if account is None:
            _create(session, row, reps)
            report.count("created")
            if not row.domains:
                report.notes.append(
                    f"{row.name} created without domains (a renamed account? "
                    f'crm-sync account rename OLD_NAME "{row.name}")'
                )
            continue
        changed = _update(account, row, reps)
        report.count(outcome(changed or bool(lost[row.key])))
        for domain in lost[row.key]:
            to = claimed.get(domain)
            report.notes.append(f"{row.name} lost domain {domain}" + (f" to {to}" if to else ""))
    session.flush()
    return report


def _read(session: Session, path: Path) -> tuple[list[AccountRow], tuple[str, ...]]:
    """The file's rows, checked, and the columns it has that are none of ``COLUMNS``."""
    seen = SeenRows("account")
    rows = []
    found = iter_rows(path, COLUMNS, required=("Name",), lookalikes=True)
    for line, cells in found:
        with at_line(line):
            row = _parse(line, cells)
            seen.check([row.key])
            seen.add([row.key], f"line {line}")
        rows.append(row)
    # Domains once every row is known: a later row may give up the domain an earlier row claims.
    owners = _domain_owners(session)
    known = set(session.scalars(select(Account.name_key)))
    listed = {row.key: row.domains for row in rows}
    in_file: dict[str, tuple[str, int]] = {}  # domain → (account name, line)
    for row in rows:
        with at_line(row.line):
            _check_domains(row, owners, listed, in_file, row.key in known)
    return rows, found.ignored


def _parse(line: int, cells: Row) -> AccountRow:
    name = fit("Name", clean_text(cells["Name"]), Account.name)
    if not name:
        raise ValueError("Name is empty")
    fit("Name", name_key(name), Account.name_key)  # lower case may be longer ("İ" → "i̇")
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
        territory=fit("Territory", clean_text(cells["Territory"]), Account.territory) or None,
        owner=optional_email(cells["Owner"]),
    )


def _domain_owners(session: Session) -> dict[str, tuple[str, str]]:
    """Every stored domain → (name_key, name) of the account owning it."""
    rows = session.execute(
        select(AccountDomain.domain, Account.name_key, Account.name).join(AccountDomain.account)
    )
    return {normalize_domain(domain): (key, name) for domain, key, name in rows}


def _check_domains(
    row: AccountRow,
    owners: dict[str, tuple[str, str]],
    listed: dict[str, tuple[str, ...]],
    in_file: dict[str, tuple[str, int]],
    exists: bool,
) -> None:
    """Each domain of the row is free, the row's account's own, or given up by its owner's row in the file;
    and no other row of the file lists it. ``exists``: the row's account is stored (else the row creates it)."""
    for domain in row.domains:
        owner = owners.get(domain)
        if owner is not None and owner[0] != row.key and not released(domain, listed.get(owner[0])):
            hint = "" if exists else (
                f' (if the account was renamed: crm-sync account rename "{owner[1]}" "{row.name}", then import again)'
            )
            raise ValueError(f"domain '{domain}' already belongs to account '{owner[1]}'{hint}")
        earlier = in_file.get(domain)
        if earlier is not None:
            raise ValueError(f"domain '{domain}' is also listed for '{earlier[0]}' on line {earlier[1]}")
        in_file[domain] = (row.name, row.line)


def _drop_domains(account: Account, row: AccountRow) -> list[str]:
    """Remove the account's domains the row's (non-empty) Domains cell no longer lists; returns them."""
    by_name = {normalize_domain(d.domain): d for d in account.domains}
    gone = dropped(by_name, row.domains)
    for domain in gone:
        account.domains.remove(by_name[domain])
    return gone


def _create(session: Session, row: AccountRow, reps: Reps) -> None:
    session.add(
        Account(
            name=row.name,
            name_key=row.key,
            type=row.type or "prospect",
            territory=row.territory,
            owner=reps.get(row.owner),
            domains=[AccountDomain(domain=domain) for domain in row.domains],
        )
    )


def _update(account: Account, row: AccountRow, reps: Reps) -> bool:
    """The row's fields and new domains on a stored account; True when anything changed."""
    changed = apply_fields(
        account, {"name": row.name, "type": row.type, "territory": row.territory, "owner": reps.get(row.owner)}
    )
    stored = {normalize_domain(d.domain) for d in account.domains}
    for domain in row.domains:
        if domain not in stored:
            account.domains.append(AccountDomain(domain=domain))
            changed = True
    return changed

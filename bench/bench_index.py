"""Run start in a large CRM: the candidate index built for the run, against the index the process kept.

Run from the repository root (about a minute and a half; PostgreSQL from Debian's package, started on
127.0.0.1 for the run, or SQLite only without it):

    python -m bench.bench_index                          # 100,000 contacts, SQLite and PostgreSQL
    python -m bench.bench_index --contacts 20000 --rounds 5

Every processing run used to start by reading the whole CRM into the candidate index (``build_index``). A
process now keeps its index between runs and reuses it while the database's change record says that nothing
it was read from has changed (``pipeline.index_cache``, ``crm_store.index_changes``). For each backend, in a
migrated database holding ``bench_matching``'s CRM (N contacts, N/5 accounts, N/10 leads, 1.5 open
opportunities per account), ``--rounds`` times, in turn:

- **build**: ``build_index``, what each run did before;
- **kept**: a run's index when nothing changed: one query, and copies of the three maps a run adds to;
- **added**: another connection first adds a contact with an address (what a run adds), so the kept index
  takes the new rows;
- **changed**: another connection first changes a contact's address, so the kept index is read again.

The cost on writes: the CRM's bulk inserts into a new database, twice with the triggers and twice without,
in turn (the best of each). Printed: medians, build / kept, build / added, and the import times.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/bench_index.py` works too

from bench.bench_ingest import create_database
from bench.bench_matching import INTERNAL, build_crm
from bench.servers import throwaway
from crm_store import index_changes
from crm_store.db import make_engine
from crm_store.migrate import upgrade
from sync_service.matching.load import build_index
from sync_service.pipeline.index_cache import IndexCache

DOMAINS = frozenset({INTERNAL})


def _crm(url: str, contacts: int, *, triggers: bool) -> tuple[Engine, float]:
    """A migrated database with the CRM in it (without the change triggers if not ``triggers``); the time its
    bulk inserts took."""
    engine = make_engine(url)
    upgrade(engine)
    if not triggers:
        with engine.begin() as connection:
            for statement in index_changes.uninstall_sql(connection.dialect.name):
                connection.execute(text(statement))
    with Session(engine) as session:
        started = time.perf_counter()
        build_crm(session, contacts, random.Random(4))
        seconds = time.perf_counter() - started
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            # build_crm chose the contacts' ids: the sequence continues after them for the contacts added here
            connection.execute(text("SELECT setval(pg_get_serial_sequence('contacts', 'id'), max(id)) FROM contacts"))
            connection.execute(text("VACUUM ANALYZE"))
    return engine, seconds


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure(name: str, new_url: Callable[[str], str], contacts: int, rounds: int) -> None:
    imports: dict[bool, list[float]] = {True: [], False: []}
    for turn, triggers in enumerate((True, False, False, True)):  # the CRM's import, in turn with and without
        made, seconds = _crm(new_url(f"crm{turn}"), contacts, triggers=triggers)
        imports[triggers].append(seconds)
        if turn:
            made.dispose()
        else:
            engine = made  # the timed runs' database
    with_triggers, without = min(imports[True]), min(imports[False])
    cache = IndexCache()
    times: dict[str, list[float]] = {"build": [], "kept": [], "added": [], "changed": []}

    def build() -> None:
        with Session(engine) as session:
            build_index(session, DOMAINS, "US", threads=False)

    def kept() -> None:
        with Session(engine) as session:
            cache.index(session, DOMAINS, "US")

    def change(round_: int) -> None:
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE contact_emails SET email = :e WHERE contact_id = 1 AND position = 0"),
                {"e": f"renamed{round_}@acct1.example"},
            )

    def add(round_: int) -> None:
        with engine.begin() as connection:
            new = connection.execute(
                text(
                    "INSERT INTO contacts (name, first_name, middle_name, last_name, company, job_title, account_id,"
                    " source, created_at) VALUES (:n, '', '', '', '', '', 1, 'sync', CURRENT_TIMESTAMP) RETURNING id"
                ),
                {"n": f"New {round_}"},
            ).scalar_one()
            connection.execute(
                text("INSERT INTO contact_emails (contact_id, email, position) VALUES (:c, :e, 0)"),
                {"c": new, "e": f"new{round_}@acct1.example"},
            )

    kept()  # the first index of the process
    for round_ in range(rounds):
        times["build"].append(_timed(build))
        times["kept"].append(_timed(kept))
        add(round_)
        times["added"].append(_timed(kept))
        change(round_)
        times["changed"].append(_timed(kept))
    engine.dispose()
    counts = (cache.hits, cache.patches, cache.builds)
    if counts != (rounds, rounds, rounds + 1):
        raise SystemExit(f"unexpected uses of the kept index (hits, patches, builds): {counts}")
    build_s, kept_s, added_s, changed_s = (statistics.median(times[k]) for k in ("build", "kept", "added", "changed"))
    print(
        f"{name:<10} {contacts:>9,} {build_s * 1000:>9.1f} {kept_s * 1000:>8.2f} {added_s * 1000:>8.2f}"
        f" {changed_s * 1000:>10.1f} {build_s / kept_s:>10.0f}× {build_s / added_s:>10.0f}×"
        f" {with_triggers:>9.2f} {without:>9.2f} {with_triggers / without:>7.2f}×",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds of each (default 9)")
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args(argv)
    print(f"run start with {args.contacts:,} contacts: medians of {args.rounds} rounds, in turn")
    print(
        f"{'backend':<10} {'contacts':>9} {'build ms':>9} {'kept ms':>8} {'added ms':>8} {'changed ms':>10}"
        f" {'build/kept':>11} {'build/added':>11} {'import s':>9} {'no trig s':>9} {'cost':>8}"
    )
    with TemporaryDirectory(prefix="bench-index-") as work:
        measure("SQLite", lambda name: f"sqlite:///{work}/{name}.db", args.contacts, args.rounds)
    if args.sqlite_only:
        return 0
    with throwaway("PostgresServer") as (server_url, why):
        if server_url is None:
            print(f"PostgreSQL: skipped ({why})")
            return 0
        database = server_url  # (bound now, for mypy: the lambda sees a str)
        measure("PostgreSQL", lambda name: create_database(database, f"bench_index_{name}"), args.contacts, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())

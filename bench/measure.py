"""One measurement per process: ``python -m bench.measure parse|ingest …`` prints one ``RESULT {json}`` line.

The benchmark (``bench/bench_ingest.py``) runs every measurement in a fresh interpreter, so each one starts
cold and its peak RSS (``VmHWM``) is its own:

- ``parse CORPUS`` — the standard library alone on the same files: read, ``BytesParser(policy=compat32)``,
  walk, decode every payload, addresses, date (the ARCHITECTURE baseline); and headers only.
- ``ingest CORPUS URL WORK`` — a fresh database (migrate, seed, import the corpus's CRM CSVs, add the
  mailbox; not timed), then ``run_once`` timed: the whole of ``crm-sync sync --once``. Then, three times
  (``--resync-rounds``), ``--resync N`` new messages are delivered and ``run_once`` is timed again; the
  re-sync of median time is the one reported (a single one of 0.1 s varies by half on this kind of machine).
  CPU seconds are this process's plus its helper processes' (the parser processes, ``CRM_PARSE_PROCESSES``,
  and the fetch process of a first sync, ``CRM_FETCH_PROCESS``; reaped when the run ends) plus, on a local
  PostgreSQL, the server's (its processes, from ``/proc``). SQL statements are counted with an engine event
  (about 1 µs each) in this process only: the fetch process's own engine is not counted. The Maildir is a
  hard-linked copy under WORK, so the cached corpus is never touched.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import Any

from bench.corpus import CRM_DIR, MAILDIR, SYNC_NOW, CorpusSpec, append_messages, message_files, read_manifest

RESULT = "RESULT "
RESYNC_ROUNDS = 3  # re-syncs after the initial sync, each after its own new messages: the median counts


# ---------------------------------------------------------------------------------------------- memory


def _status(field: str) -> int | None:
    """A ``/proc/self/status`` figure in KiB (Linux), or None."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_kib() -> int:
    """The high-water mark of this process's resident memory (VmHWM; ru_maxrss where /proc is missing)."""
    hwm = _status("VmHWM")
    if hwm is not None:
        return hwm
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0: ``5`` → ``/proc/self/clear_refs``); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------- parse


def parse_messages(messages: Iterable[bytes]) -> tuple[int, int]:
    """The ARCHITECTURE baseline on each message: ``BytesParser(policy=compat32)``, walk, decode every
    payload, addresses, date. Returns (decoded parts, messages that raised)."""
    errors = parts = 0
    for data in messages:
        try:
            msg = BytesParser(policy=compat32).parsebytes(data)
            for part in msg.walk():
                if not part.is_multipart():
                    part.get_payload(decode=True)
                    parts += 1
            getaddresses([str(v) for name in ("from", "to", "cc") for v in msg.get_all(name, [])])
            if msg["date"]:
                parsedate_to_datetime(str(msg["date"]))
        except Exception:  # a damaged message: the parser's cost is still counted
            errors += 1
    return parts, errors


def parse_only(maildir: Path) -> dict[str, Any]:
    """Time the standard library on every message of ``maildir``: full parse, then headers only."""
    files = message_files(maildir)
    started, cpu = time.perf_counter(), time.process_time()
    parts, errors = parse_messages(path.read_bytes() for path in files)
    full, full_cpu = time.perf_counter() - started, time.process_time() - cpu
    started = time.perf_counter()
    for path in files:
        with contextlib.suppress(Exception):
            BytesHeaderParser(policy=compat32).parsebytes(path.read_bytes())
    headers = time.perf_counter() - started
    return {
        "messages": len(files),
        "seconds": full,
        "cpu_seconds": full_cpu,
        "headers_seconds": headers,
        "parts": parts,
        "errors": errors,
    }


# ---------------------------------------------------------------------------------------------- ingest


def link_tree(source: Path, target: Path) -> None:
    """A copy of a Maildir made of hard links (a real copy across file systems)."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link)


def _setup(corpus: Path, database_url: str, work: Path) -> tuple[Any, CorpusSpec, Path]:
    """A migrated, seeded database holding the corpus's CRM and its mailbox (``alice``)."""
    from crm_store.db import transaction
    from sync_service import mailboxes
    from sync_service.bootstrap import bootstrap
    from sync_service.config import Settings

    manifest = read_manifest(corpus)
    if manifest is None:
        raise SystemExit(f"{corpus} holds no complete corpus (no manifest.json)")
    spec = CorpusSpec(**manifest["spec"])  # type: ignore[arg-type]
    maildir = work / "maildir"
    link_tree(corpus / MAILDIR, maildir)
    settings = Settings(
        database_url=database_url,
        data_dir=work / "data",
        internal_domains=frozenset({str(manifest["internal_domain"])}),
    )
    app = bootstrap(settings)
    initialise_with_crm(app, corpus)
    with transaction(app.sessions) as session:
        mailboxes.add_mailbox(session, "alice", str(manifest["owner"]), f"maildir://{maildir}", None, ())
    return app, spec, maildir


def initialise_with_crm(app: Any, corpus: Path) -> None:
    """Migrate and seed the database, then import the corpus's CRM (SPEC §5 CSVs)."""
    from crm_store.db import transaction
    from sync_service.cli.setup import initialise
    from sync_service.importers import import_accounts, import_contacts, import_leads, import_opportunities

    initialise(app)
    for importer, name in (
        (import_accounts, "accounts.csv"),
        (import_contacts, "contacts.csv"),
        (import_leads, "leads.csv"),
        (import_opportunities, "opportunities.csv"),
    ):
        with transaction(app.sessions) as session:
            importer(session, corpus / CRM_DIR / name)


class StatementCounter:
    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: object) -> None:
        self.count += 1


def _counts(app: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from crm_store.models import Activity, Document, QuarantineEntry, RawItem, SyncedItem

    with app.sessions() as session:
        return {
            name: int(session.scalar(select(func.count()).select_from(model)) or 0)
            for name, model in (
                ("raw_items", RawItem),
                ("synced_items", SyncedItem),
                ("activities", Activity),
                ("documents", Document),
                ("quarantined", QuarantineEntry),
            )
        }


def stolen_seconds() -> float | None:
    """CPU seconds the hypervisor has taken from this virtual machine since boot, over all its CPUs (the
    ``steal`` column of ``/proc/stat``); None where unknown. A run during which the host took much CPU is
    slower for a reason that is not ours: the benchmarks print this next to their timings."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK") if fields[0] == "cpu" and len(fields) > 8 else None
    except (OSError, ValueError):
        return None


class ServerCpu:
    """CPU seconds used by a local PostgreSQL server: its postmaster and every process under it (backends,
    checkpointer, WAL writer, autovacuum), alive or already exited. Linux only; ``None`` where unknown."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import text

        self.postmaster: int | None = None
        if engine.dialect.name != "postgresql":
            return
        try:
            with engine.connect() as conn:
                backend = int(conn.scalar(text("SELECT pg_backend_pid()")))
            self.postmaster = _stat(backend)[0]
        except (OSError, ValueError, IndexError):
            self.postmaster = None

    def seconds(self) -> float | None:
        if self.postmaster is None:
            return None
        try:
            _ppid, own, children = _stat(self.postmaster)
        except (OSError, ValueError, IndexError):
            return None
        total = own + children  # children: the reaped ones (exited backends)
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    ppid, cpu, _ = _stat(int(entry.name))
                    if ppid == self.postmaster:
                        total += cpu
        return total


def _stat(pid: int) -> tuple[int, float, float]:
    """(parent pid, own user+system CPU s, reaped children's CPU s) of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def _children_cpu() -> float:
    """CPU seconds of this process's reaped children: the parser processes of a run (``preparse``) and its
    fetch process (``workers.fetch_ahead``)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(app: Any, counter: StatementCounter, server: ServerCpu) -> tuple[Any, dict[str, Any]]:
    """``run_once`` once, with its wall and CPU seconds (this process, and the database server's)."""
    from sync_service.pipeline.runner import run_once
    from sync_service.startup import freeze_startup_objects
    from workers.options import fetch_process_for_command, parse_processes_for_command

    # As `crm-sync sync --once` does at start-up, before it syncs (not timed). Before the re-sync this is a
    # full collection of what the first run left (20-100 ms here), which a new process never pays.
    freeze_startup_objects()
    counter.count = 0
    server_before, stolen_before = server.seconds(), stolen_seconds()
    helpers = _children_cpu()
    started, cpu = time.perf_counter(), time.process_time()
    report = run_once(  # as `crm-sync sync` does
        app, now=SYNC_NOW, parse_processes=parse_processes_for_command(), fetch_process=fetch_process_for_command()
    )
    wall, own = time.perf_counter() - started, time.process_time() - cpu
    helpers = _children_cpu() - helpers
    server_after, stolen_after = server.seconds(), stolen_seconds()
    server_cpu = server_after - server_before if server_before is not None and server_after is not None else None
    stolen = stolen_after - stolen_before if stolen_before is not None and stolen_after is not None else None
    return report, {
        "seconds": wall,
        "cpu_seconds": own + helpers + (server_cpu or 0.0),
        "client_cpu_seconds": own,
        "helper_cpu_seconds": helpers,
        "helper_peak_rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        "server_cpu_seconds": server_cpu,
        "statements": counter.count,
        "stolen_seconds": stolen,
    }


def ingest(
    corpus: Path, database_url: str, work: Path, resync: int = 10, rounds: int = RESYNC_ROUNDS
) -> dict[str, Any]:
    """Initial ``run_once`` on a fresh database, then ``rounds`` re-syncs, each after ``resync`` new messages
    (0: none). The ``resync_*`` figures are those of the re-sync of median time; ``resync_rounds_seconds``
    has every round's, in order.

    ``cpu_seconds`` is this process's CPU plus, on a local PostgreSQL, the server's."""
    app, spec, maildir = _setup(corpus, database_url, work)
    try:
        counter, server = StatementCounter(app.engine), ServerCpu(app.engine)
        reset = reset_peak_rss()
        rss_before = _status("VmRSS") or 0
        report, timing = _timed(app, counter, server)
        result: dict[str, Any] = {
            "messages": len(message_files(maildir)),
            **timing,
            "peak_rss_kib": peak_rss_kib(),
            "rss_before_kib": rss_before,
            "peak_reset": reset,
            "failed": [m.error for m in report.failed],
            "stats": report.stats.as_dict(),
            "counts": _counts(app),
        }
        if resync:
            runs = []
            for number in range(max(1, rounds)):
                append_messages(maildir, spec, resync, tag="resync" if number == 0 else f"resync{number}")
                runs.append(_timed(app, counter, server))
            again, timing = sorted(runs, key=lambda run: run[1]["seconds"])[len(runs) // 2]
            result.update({f"resync_{key}": value for key, value in timing.items()})
            result.update(
                resync_messages=resync,
                resync_rounds_seconds=[run[1]["seconds"] for run in runs],
                resync_logged=again.stats.logged + sum(again.stats.skipped.values()) + again.stats.quarantined,
                resync_failed=[m.error for run in runs for m in run[0].failed],
            )
        return result
    finally:
        app.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.measure", description="One benchmark measurement.")
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("parse", help="stdlib-only parse of a corpus's Maildir")
    p.add_argument("corpus", type=Path)
    i = sub.add_parser("ingest", help="run_once on a fresh database")
    i.add_argument("corpus", type=Path)
    i.add_argument("database_url")
    i.add_argument("work", type=Path, help="an empty folder for the Maildir copy and the blob store")
    i.add_argument("--resync", type=int, default=10, help="new messages for each re-sync (0: no re-sync)")
    i.add_argument("--resync-rounds", type=int, default=RESYNC_ROUNDS,
                   help=f"re-syncs; the median counts (default {RESYNC_ROUNDS})")  # fmt: skip
    args = parser.parse_args(argv)
    if args.what == "parse":
        result = parse_only(args.corpus / MAILDIR)
    else:
        result = ingest(args.corpus, args.database_url, args.work, args.resync, args.resync_rounds)
    sys.stdout.write(RESULT + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

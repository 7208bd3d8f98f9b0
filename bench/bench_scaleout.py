"""Scale-out benchmark: throughput of the Redis-mode workers with one and with two worker processes.

    python -m bench.bench_scaleout [--messages 8000] [--quick] [--mailboxes 4] [--repeat 1] [--json FILE]

In one run:

1. generate the corpus (``bench/corpus.py``) or reuse the cached one, and read every file once (warm cache);
2. start a throw-away PostgreSQL and Redis on 127.0.0.1 (``tests.support.servers``);
3. per run, on a fresh database (migrated, seeded, the corpus CRM imported; not timed): the corpus's messages
   are split round-robin into ``--mailboxes`` Maildirs of hard links, each added as a mailbox of the corpus's
   owner, paused. Then ``crm-sync worker --processes P --threads T`` and ``crm-sync scheduler`` start as a
   user would run them; once every worker process fetches from Redis and the scheduler has ticked, the
   mailboxes are resumed in one transaction and the clock starts. It stops when every mailbox has synced and
   no raw item is pending (the database is polled), then the processes get SIGTERM;
4. run A has 1 worker process, run B 2; with ``--repeat N`` they alternate A B A B …, and the median of each
   counts. Every run's database is compared with the first run's by natural keys (activities, documents,
   contacts, leads, opportunities, synced items, raw items, quarantine): the runs must agree.

It prints a table with each run's wall seconds, msg/s, the CPU seconds of the worker processes and of the
PostgreSQL server, the cores they kept busy on average, the CPU the host took from this VM meanwhile
(``/proc/stat`` steal), and the 2-vs-1 throughput ratio against the target
(≥ 1.7×). The exit code is 0 even when the target is missed; 1 when a run fails or the runs disagree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from bench.bench_ingest import create_database, warm_page_cache
from bench.corpus import MAILDIR, SYNC_NOW, CorpusSpec, ensure_corpus, make_maildir, message_files
from bench.corpus import read_manifest as _read_manifest
from bench.measure import stolen_seconds
from bench.options import corpus_parser, parse_corpus_args, write_json
from bench.servers import throwaway
from bench.table import aligned, cell

REPO = Path(__file__).resolve().parents[1]
TARGET = 1.7  # two worker processes: at least 1.7× the throughput of one (issue #9)
POLL = 0.25  # seconds between two looks at the database while a run goes
HEARTBEATS = "dramatiq:__heartbeats__"  # RedisBroker: one member per worker process once it fetches


@dataclass
class RunResult:
    """One timed run: ``processes`` worker processes of ``threads`` threads each."""

    label: str
    processes: int
    threads: int
    messages: int
    seconds: float
    worker_cpu_seconds: float | None
    server_cpu_seconds: float | None
    startup_seconds: float
    stolen_seconds: float | None = None  # CPU the host took from this VM during the run (``/proc/stat`` steal)
    counts: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, Any] = field(default_factory=dict)  # from the workers' JSON logs: see ``task_summary``
    agrees: bool | None = None  # with the first run, by natural keys (None: it is the first run)
    differences: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def busy_cores(self) -> float | None:
        if self.worker_cpu_seconds is None or self.server_cpu_seconds is None or not self.seconds:
            return None
        return (self.worker_cpu_seconds + self.server_cpu_seconds) / self.seconds


class RunFailed(RuntimeError):
    pass


def _say(text: str) -> None:
    print(text, flush=True)


# ---------------------------------------------------------------------------------------------- set-up


def split_maildir(source: Path, targets: Sequence[Path]) -> list[int]:
    """Hard-link the messages of ``source`` round-robin into the Maildirs ``targets`` (same folders: the
    inbox and ``.Sent``); the number of messages each got."""
    for target in targets:
        make_maildir(target)
    counts = [0] * len(targets)
    for i, path in enumerate(message_files(source)):
        k = i % len(targets)
        destination = targets[k] / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, destination)
        except OSError:
            shutil.copy2(path, destination)
        counts[k] += 1
    return counts


def window_days_back(now: datetime | None = None) -> int:
    """The past sync window that puts the corpus's calendar where ``SYNC_NOW`` puts it in bench_ingest: the
    workers process with the real clock, and the corpus is dated before ``SYNC_NOW``."""
    now = now or datetime.now(UTC)
    return 90 + max(0, (now - SYNC_NOW).days + 1)


def prepare(corpus: Path, database_url: str, work: Path, mailboxes: int, days_back: int) -> tuple[Any, int]:
    """A migrated, seeded database with the corpus's CRM and ``mailboxes`` paused mailboxes splitting its
    messages (``box1`` …); the app and the number of messages."""
    from sqlalchemy import update

    from bench.measure import initialise_with_crm
    from crm_store.db import transaction
    from crm_store.models import Mailbox
    from crm_store.models.sync import PAUSED
    from sync_service import mailboxes as mailbox_admin
    from sync_service.bootstrap import bootstrap
    from sync_service.config import Settings

    manifest = _read_manifest(corpus)
    if manifest is None:
        raise RunFailed(f"{corpus} holds no complete corpus (no manifest.json)")
    targets = [work / f"mail-{k + 1}" for k in range(mailboxes)]
    counts = split_maildir(corpus / MAILDIR, targets)
    settings = Settings(
        database_url=database_url,
        data_dir=work / "data",
        internal_domains=frozenset({str(manifest["internal_domain"])}),
        window_days_back=days_back,
    )
    app = bootstrap(settings)
    initialise_with_crm(app, corpus)
    with transaction(app.sessions) as session:
        for k, target in enumerate(targets):
            mailbox_admin.add_mailbox(session, f"box{k + 1}", str(manifest["owner"]), f"maildir://{target}", None, ())
    with transaction(app.sessions) as session:
        session.execute(update(Mailbox).values(state=PAUSED))
    return app, sum(counts)


# ---------------------------------------------------------------------------------------------- processes


class Process:
    """``crm-sync ARGS`` in its own process group (SIGTERM reaches dramatiq's worker processes too)."""

    def __init__(self, args: list[str], env: dict[str, str], log: IO[bytes]) -> None:
        command = [sys.executable, "-m", "sync_service.cli.main", *args]
        self.popen = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=log, start_new_session=True)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 60.0) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=30)


def process_env(database_url: str, data_dir: Path, broker_url: str, internal: str, days_back: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env.update(
        CRM_DATABASE_URL=database_url,
        CRM_DATA_DIR=str(data_dir),
        CRM_BROKER_URL=broker_url,
        CRM_INTERNAL_DOMAINS=internal,
        CRM_SYNC_WINDOW_PAST_DAYS=str(days_back),
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
    )
    return env


def _wait(predicate: Any, timeout: float, what: str, check: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise RunFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL / 5)


def _finished(app: Any) -> bool:
    """Every mailbox synced (a success recorded, not syncing) and no raw item left to process."""
    from sqlalchemy import select

    from crm_store.models import Mailbox
    from crm_store.models.sync import FAILED, SYNCING
    from sync_service.pipeline.process import count_pending

    with app.sessions() as session:
        boxes = session.execute(select(Mailbox.name, Mailbox.state, Mailbox.last_success_at, Mailbox.last_error))
        rows = boxes.all()
        failed = [f"{name}: {error}" for name, state, _, error in rows if state == FAILED]
        if failed:
            raise RunFailed(f"mailbox sync failed: {'; '.join(failed)}")
        if not all(last is not None and state != SYNCING for _, state, last, _ in rows):
            return False
        return count_pending(session) == 0


def group_cpu(groups: Sequence[int]) -> float | None:
    """CPU seconds (user + system) of every live process in these process groups (our worker and scheduler
    commands, each started in its own session, with dramatiq's worker processes); None without /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total, seen = 0.0, False
    try:
        entries = list(os.scandir("/proc"))
    except OSError:
        return None
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in groups:
            total += (int(fields[11]) + int(fields[12])) / tick
            seen = True
    return total if seen else None


def task_summary(log: Path) -> dict[str, Any]:
    """What the worker processes did, from their JSON log lines: syncs and processing runs, the seconds each
    process spent in them, the batches that collided with another run's rows (and were redone, optimistically,
    then in halves or item by item), and the new contacts another run had made meanwhile (used, without a redo)."""
    busy: dict[str, float] = {}
    summary = {"syncs": 0, "process_runs": 0, "skipped": 0, "redone_batches": 0, "collisions": 0, "contacts_used": 0}
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        event = record.get("event")
        if event in ("sync", "process"):
            summary["syncs" if event == "sync" else "process_runs"] += 1
            pid = str(record.get("pid"))
            busy[pid] = busy.get(pid, 0.0) + float(record.get("duration") or 0.0)
        elif event in ("sync_skipped", "process_skipped"):
            summary["skipped"] += 1
        elif " redone " in (message := str(record.get("msg", ""))):  # in two halves or item by item
            summary["redone_batches"] += 1
        elif "collided with another run" in message:
            summary["collisions"] += 1
        elif "another run made a contact for" in message:
            summary["contacts_used"] += 1
    return {**summary, "busy_seconds": {pid: round(s, 2) for pid, s in sorted(busy.items())}}


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def timed_run(
    label: str,
    processes: int,
    args: argparse.Namespace,
    corpus: Path,
    server_url: str,
    broker_url: str,
    work: Path,
) -> tuple[RunResult, dict[str, Any]]:
    """One run on a fresh database: its result and its snapshot by natural keys."""
    import redis
    from sqlalchemy import update

    from bench.measure import ServerCpu, _counts
    from crm_store.db import transaction
    from crm_store.models import Mailbox
    from crm_store.models.sync import IDLE

    manifest = _read_manifest(corpus) or {}
    days_back = window_days_back()
    url = create_database(server_url, f"scaleout_{os.getpid()}_{label.lower()}")
    work.mkdir(parents=True)
    app, messages = prepare(corpus, url, work, args.mailboxes, days_back)
    client = redis.Redis.from_url(broker_url)
    client.flushall()  # the previous run's queues, locks, markers and heartbeats
    env = process_env(url, work / "data", broker_url, str(manifest.get("internal_domain", "")), days_back)
    if args.slice is not None:  # else the workers' default (``workers/options.py``)
        env["CRM_PROCESS_SLICE_SECONDS"] = str(args.slice)
    worker_log, scheduler_log = work / "worker.log", work / "scheduler.log"
    workers = scheduler = None
    try:
        server = ServerCpu(app.engine)
        launched = time.perf_counter()
        with worker_log.open("wb") as wlog, scheduler_log.open("wb") as slog:
            workers = Process(["worker", "--processes", str(processes), "--threads", str(args.threads)], env, wlog)
            scheduler = Process(
                ["scheduler", "--interval", "3600", "--tick", str(args.tick), "--complete-every", "3600"], env, slog
            )

        def alive() -> None:
            for name, proc, log in (("worker", workers, worker_log), ("scheduler", scheduler, scheduler_log)):
                if proc is not None and not proc.alive():
                    raise RunFailed(f"crm-sync {name} exited ({proc.popen.returncode}):\n{_tail(log)}")

        # Ready: every worker process fetches from Redis, the scheduler has ticked (its first tick queues
        # complete_due, on an empty activities table) and a worker has taken that message.
        _wait(lambda: int(client.zcard(HEARTBEATS)) >= processes, 120, "the worker processes", alive)
        _wait(lambda: b"scheduler_start" in scheduler_log.read_bytes(), 120, "the scheduler", alive)
        time.sleep(2 * args.tick + 0.2)
        _wait(lambda: not client.exists("crm-sync:queued:complete_due"), 60, "the first complete_due", alive)
        startup = time.perf_counter() - launched

        groups = (workers.popen.pid, scheduler.popen.pid)
        server_before, cpu_before, stolen_before = server.seconds(), group_cpu(groups), stolen_seconds()
        started = time.perf_counter()
        with transaction(app.sessions) as session:
            session.execute(update(Mailbox).values(state=IDLE))
        _wait(lambda: _finished(app), args.timeout, "every mailbox to sync and every item to be processed", alive)
        seconds = time.perf_counter() - started
        server_after, cpu_after, stolen_after = server.seconds(), group_cpu(groups), stolen_seconds()
        workers.stop()
        scheduler.stop()
        worker_cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
        server_cpu = server_after - server_before if server_before is not None and server_after is not None else None
        result = RunResult(
            label, processes, args.threads, messages, seconds, worker_cpu, server_cpu, startup,
            stolen_after - stolen_before if stolen_before is not None and stolen_after is not None else None,
            _counts(app),
        )
        result.tasks = task_summary(worker_log)
        return result, snapshot(app)
    finally:
        for proc in (workers, scheduler):
            if proc is not None:
                proc.stop()
        client.close()
        app.close()


# ---------------------------------------------------------------------------------------------- agreement


def snapshot(app: Any) -> dict[str, Any]:
    """The database by natural keys (no ids, no timestamps), as tests/workers/test_crash.py compares runs."""
    from sqlalchemy import select

    from crm_store.models import Mailbox, QuarantineEntry, RawItem, SyncedItem
    from sync_service.exports import (
        export_activities,
        export_contacts,
        export_documents,
        export_leads,
        export_opportunities,
    )

    def without(rows: list[dict[str, Any]], *keys: str) -> list[str]:
        """Each row as text, without ``keys``; list values sorted (the order of links is insertion order,
        which concurrent runs do not fix)."""
        return sorted(
            repr(sorted((k, sorted(map(repr, v)) if isinstance(v, list) else v) for k, v in r.items() if k not in keys))
            for r in rows
        )

    with app.sessions() as session:
        raw = session.execute(
            select(Mailbox.name, RawItem.folder, RawItem.external_id, RawItem.state, RawItem.sha256).join(Mailbox)
        ).all()
        quarantine = session.execute(select(QuarantineEntry.external_id, QuarantineEntry.reason)).all()
        return {
            "activities": without(export_activities(session), "id"),
            "documents": without(export_documents(session), "id", "activity_id"),
            "contacts": without(export_contacts(session), "id"),
            "leads": without(export_leads(session), "id"),
            "opportunities": without(export_opportunities(session), "id"),
            "synced_items": sorted(session.scalars(select(SyncedItem.dedupe_key))),
            "raw_items": sorted(repr(tuple(r)) for r in raw),
            "quarantine": sorted(repr(tuple(q)) for q in quarantine),
            "items_synced": {name: n for name, n in session.execute(select(Mailbox.name, Mailbox.items_synced))},
        }


def differences(got: dict[str, Any], reference: dict[str, Any], shown: int = 3) -> list[str]:
    """What differs, per kind of row: counts, and a few rows missing or extra (duplicates count)."""
    problems = []
    for kind in sorted(set(got) | set(reference)):
        a, b = got.get(kind), reference.get(kind)
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list):
            missing = list((Counter(b) - Counter(a)).elements())
            extra = list((Counter(a) - Counter(b)).elements())
            problems.append(
                f"{kind}: {len(a)} rows vs {len(b)}; {len(missing)} missing, e.g. {missing[:shown]}; "
                f"{len(extra)} extra (or duplicated), e.g. {extra[:shown]}"
            )
        else:
            problems.append(f"{kind}: {a!r} vs {b!r}")
    return problems


# ---------------------------------------------------------------------------------------------- report


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def ratio_of(runs: Sequence[RunResult]) -> float | None:
    """Median msg/s with two worker processes over median msg/s with one."""
    one = _median([r.rate for r in runs if r.processes == 1])
    two = _median([r.rate for r in runs if r.processes == 2])
    return two / one if one and two else None


def render(runs: Sequence[RunResult]) -> str:
    header = (
        "what",
        "msgs",
        "wall s",
        "msg/s",
        "workers CPU s",
        "PostgreSQL CPU s",
        "busy cores",
        "stolen s",
        "ratio",
        "target",
        "met",
    )
    lines: list[tuple[str, ...]] = []
    by_round: dict[str, RunResult] = {}
    for run in runs:
        ratio_text = ""
        partner = by_round.get(run.label[1:])
        if run.processes == 2 and partner is not None and partner.rate:
            ratio_text = f"{run.rate / partner.rate:.2f}×"
        by_round.setdefault(run.label[1:], run)
        agree = "" if run.agrees is None else ("agrees" if run.agrees else "DIFFERS")
        lines.append(
            (
                f"run {run.label}: {run.processes} worker process{'es' if run.processes > 1 else ''}"
                f" × {run.threads} thread{'s' if run.threads > 1 else ''}",
                f"{run.messages:,}",
                f"{run.seconds:.2f}",
                f"{run.rate:,.0f}",
                cell(run.worker_cpu_seconds, ".1f"),
                cell(run.server_cpu_seconds, ".1f"),
                cell(run.busy_cores, ".2f"),
                cell(run.stolen_seconds, ".1f"),
                ratio_text or "–",
                "–",
                agree or "–",
            )
        )
    for processes in (1, 2):
        chosen = [r for r in runs if r.processes == processes]
        if not chosen:
            continue
        seconds = _median([r.seconds for r in chosen])
        rate = _median([r.rate for r in chosen])
        ratio = ratio_of(runs) if processes == 2 else None
        lines.append(
            (
                f"median, {processes} worker process{'es' if processes > 1 else ''} ({len(chosen)} run"
                f"{'s' if len(chosen) > 1 else ''})",
                f"{chosen[0].messages:,}",
                cell(seconds, ".2f"),
                cell(rate, ",.0f"),
                cell(_median([r.worker_cpu_seconds for r in chosen]), ".1f"),
                cell(_median([r.server_cpu_seconds for r in chosen]), ".1f"),
                cell(_median([r.busy_cores for r in chosen]), ".2f"),
                cell(_median([r.stolen_seconds for r in chosen]), ".1f"),
                "1.00×" if processes == 1 else cell(ratio, ".2f") + ("×" if ratio is not None else ""),
                "–" if processes == 1 else f"≥ {TARGET:g}×",
                "–" if processes == 1 or ratio is None else ("yes" if ratio >= TARGET else "NO"),
            )
        )
    return aligned(header, lines, left=(0, 10))


def summary(results: dict[str, Any]) -> str:
    env, manifest = results["environment"], results["manifest"]
    runs = [RunResult(**r) for r in results["runs"]]
    lines = [
        f"crm-sync scale-out benchmark — {env['date']}, {env['cpus']} CPUs, Python {env['python']}, "
        f"load average {env['load_before'][0]:.1f} → {env['load_after'][0]:.1f} "
        f"(1/5/15 min before: {' '.join(f'{v:.2f}' for v in env['load_before'])}; "
        f"after: {' '.join(f'{v:.2f}' for v in env['load_after'])})",
        f"corpus: {manifest.get('messages', 0):,} messages split round-robin into {results['mailboxes']} mailboxes; "
        f"Redis + PostgreSQL on this machine; scheduler tick {results['tick']} s"
        + (f"; process slice {results['slice']} s" if results.get("slice") is not None else ""),
    ]
    if runs:
        counts = ", ".join(f"{k} {v:,}" for k, v in runs[0].counts.items())
        startup = statistics.median(r.startup_seconds for r in runs)
        lines.append(f"each run: {counts}; processes started and ready before the clock: {startup:.1f} s (median)")
    lines += ["", render(runs), ""]
    for run in runs:
        tasks = run.tasks
        if tasks:
            busy = " + ".join(f"{v:.1f}" for v in tasks["busy_seconds"].values()) or "0"
            lines.append(
                f"run {run.label}: {tasks['syncs']} syncs and {tasks['process_runs']} processing runs, "
                f"busy {busy} s in tasks per worker process; {tasks.get('collisions', 0)} batch collision(s) with "
                f"another run, {tasks['redone_batches']} batch(es) redone in halves or item by item; "
                f"{tasks.get('contacts_used', 0)} new contact(s) another run had made, used; "
                f"{tasks['skipped']} skipped as already running"
            )
    lines.append("")
    disagreeing = [r for r in runs if r.agrees is False]
    if disagreeing:
        for run in disagreeing:
            lines.append(f"RESULTS DIFFER: run {run.label} vs run {runs[0].label}:")
            lines += [f"  {d}" for d in run.differences]
    elif len(runs) > 1:
        lines.append(f"every run produced the same database as run {runs[0].label} (natural keys)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- run


def run(args: argparse.Namespace) -> dict[str, Any]:
    spec = CorpusSpec(args.messages, args.seed, args.accounts, args.leads)
    load_before = os.getloadavg()
    started = time.perf_counter()
    corpus, generated = ensure_corpus(args.cache, spec)
    _say(f"corpus: {corpus} ({'generated' if generated else 'cached'} in {time.perf_counter() - started:.1f} s)")
    warm_page_cache(corpus)
    results: dict[str, Any] = {
        "manifest": _read_manifest(corpus) or {},
        "mailboxes": args.mailboxes,
        "tick": args.tick,
        "slice": args.slice,
        "runs": [],
    }
    runs: list[RunResult] = []
    work = Path(tempfile.mkdtemp(prefix="crm-sync-scaleout-", dir=args.workdir))
    try:
        with (
            throwaway("PostgresServer") as (server_url, pg_reason),
            throwaway("RedisServer") as (broker_url, redis_reason),
        ):
            if server_url is None or broker_url is None:
                results["skipped"] = pg_reason or redis_reason
                return _finish(results, load_before)
            reference: dict[str, Any] | None = None
            for n in range(1, args.repeat + 1):
                for processes, letter in ((1, "A"), (2, "B")):
                    label = f"{letter}{n}"
                    _say(f"run {label}: {processes} worker process{'es' if processes > 1 else ''} …")
                    result, snap = timed_run(label, processes, args, corpus, server_url, broker_url, work / label)
                    if reference is None:
                        reference = snap
                    else:
                        result.differences = differences(snap, reference)
                        result.agrees = not result.differences
                    runs.append(result)
                    _say(
                        f"  {result.messages:,} messages in {result.seconds:.2f} s ({result.rate:,.0f} msg/s)"
                        + ("" if result.agrees is None else "; same result" if result.agrees else "; RESULTS DIFFER")
                    )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results["runs"] = [asdict(r) for r in runs]
    results["ratio"] = ratio_of(runs)
    results["target"] = TARGET
    results["agree"] = all(r.agrees is not False for r in runs)
    return _finish(results, load_before)


def _finish(results: dict[str, Any], load_before: tuple[float, float, float]) -> dict[str, Any]:
    results["environment"] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in os.getloadavg()],
    }
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = corpus_parser("python -m bench.bench_scaleout", __doc__.split("\n\n")[0], messages=8_000,
                           keep="Maildirs, blobs, logs")  # fmt: skip
    parser.add_argument("--mailboxes", type=int, default=4, help="mailboxes the corpus is split into (default 4)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of A (1 process) then B (2 processes)")
    parser.add_argument("--threads", type=int, default=1, help="worker threads per process (default 1)")
    parser.add_argument("--tick", type=float, default=0.2, help="scheduler tick in seconds (default 0.2)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds a run may take (default 3600)")
    parser.add_argument(
        "--slice", type=float, default=None, help="the workers' CRM_PROCESS_SLICE_SECONDS (default: theirs, 1 s)"
    )
    args = parse_corpus_args(parser, argv)
    if args.mailboxes < 1 or args.repeat < 1 or args.threads < 1:
        parser.error("--mailboxes, --repeat and --threads must be at least 1")
    if args.slice is not None and args.slice <= 0:
        parser.error("--slice must be more than 0")
    if args.tick < 0.1:
        parser.error("--tick must be at least 0.1 (the scheduler's minimum)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        results = run(args)
    except RunFailed as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    if "skipped" in results:
        _say(f"skipped: {results['skipped']}")
        return 0
    _say("")
    _say(summary(results))
    write_json(args.json, results)
    return 0 if results["agree"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: full sync of a 10,000-message IMAP mailbox, against ``mbsync`` pulling the same mailbox.

Run (needs the Debian packages dovecot-imapd and isync; nothing else is touched — everything lives in a temp dir
and the Dovecot instance listens on 127.0.0.1 on a free port):

    python bench/bench_imap.py [--messages 10000] [--seed 1]

What is timed, in the same run, against the same Dovecot:
1. ``mbsync`` (isync) pulling INBOX into an empty Maildir (``Sync Pull``, ``Create Near``) — best of two runs;
2. crm-sync: ``add_mailbox`` (secret encrypted with a fresh ``CRM_SECRET_KEY``) then ``run_once`` on a new
   SQLite database with a small seeded CRM — the fetch, storing the raw items, parsing, matching, logging
   activities and documents;
3. for insight, the IMAP connector alone (list + fetch every page, bytes discarded), and the standard library
   alone parsing the same messages (the floor of any sync that parses them: ``bench.measure.parse_messages``).

Messages: 5–22 KB, a fifth with a PDF-like attachment, 30 % from CRM contacts (logged as activities), the rest
from unknown senders (matched and skipped). Dovecot's index is built before any timing.
Measured figures are in docs/sources.md.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.measure import parse_messages
from crm_store.db import transaction
from crm_store.migrate import upgrade
from crm_store.secrets import generate_key
from crm_store.seed import seed_defaults
from sync_service import mailboxes
from sync_service.bootstrap import bootstrap
from sync_service.config import Settings
from sync_service.connectors.imap import ImapConnector
from sync_service.parsing.mime import parse_body, parse_headers
from sync_service.pipeline.runner import run_once
from sync_service.startup import freeze_startup_objects
from tests.support.builders import REP, message, seed_crm
from tests.support.dovecot import DovecotServer
from workers.options import fetch_process_for_command, parse_processes_for_command

USER, PASSWORD = "alice", "bench-password"
KNOWN = ["wile@acme.example", "hank@globex.example", "rita@initrode.example", "mindy@globex.example"]


def generate(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    words = ["proposal", "rocket", "budget", "meeting", "pricing", "contract",
             "delivery", "quarter", "forecast", "invoice", "demo"]
    start = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    out = []
    for i in range(count):
        known = rng.random() < 0.3
        sender = rng.choice(KNOWN) if known else f"person{rng.randrange(5000)}@example{i % 97}.org"
        body = "\n".join(
            " ".join(rng.choice(words) for _ in range(12)) for _ in range(rng.randrange(60, 280))
        )  # ~5–22 KB of text
        attachment = None
        if i % 5 == 0:
            pdf = b"%PDF-1.4\n" + rng.randbytes(rng.randrange(2000, 12000))
            attachment = (f"quote-{i}.pdf", pdf, "application/pdf")
        out.append(
            message(
                f"bench-{seed}-{i}@example.org",
                sender,
                [REP],
                f"{rng.choice(words).title()} {i}",
                at=start + timedelta(minutes=7 * i),
                body=body,
                attachment=attachment,
            )
        )
    return out


def run_mbsync(server: DovecotServer, work: Path, fsync: bool) -> float:
    target = work / "mbsync-maildir"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    rc = work / "mbsyncrc"
    rc.write_text(
        f"FSync {'yes' if fsync else 'no'}\n\n"
        f"IMAPAccount bench\nHost 127.0.0.1\nPort {server.port}\nUser {USER}\nPass {PASSWORD}\nSSLType None\n"
        "AuthMechs LOGIN\n\nIMAPStore remote\nAccount bench\n\n"
        f"MaildirStore local\nPath {target}/\nInbox {target}/INBOX\n\n"
        "Channel bench\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Near\nSync Pull\n"
        f"SyncState {target}/.state/\n"
    )
    (target / ".state").mkdir()
    started = time.perf_counter()
    subprocess.run(["mbsync", "-q", "-q", "-c", str(rc), "bench"], check=True)
    elapsed = time.perf_counter() - started
    pulled = sum(1 for sub in ("new", "cur") for _ in (target / "INBOX" / sub).iterdir())
    print(f"  mbsync (FSync {'yes' if fsync else 'no'}): {pulled} messages in {elapsed:.2f} s")
    return elapsed


def run_connector_only(server: DovecotServer, batch: int) -> float:
    connector = ImapConnector(server.url(USER, query="folders=INBOX"), PASSWORD)
    started = time.perf_counter()
    cursor, count = None, 0
    while True:
        page = connector.list_changes("INBOX", cursor, batch)
        count += sum(1 for _ in connector.fetch("INBOX", page.upserts))
        cursor = page.next_cursor
        if not page.more:
            break
    connector.close()
    elapsed = time.perf_counter() - started
    print(f"  connector only (list + fetch): {count} messages in {elapsed:.2f} s")
    return elapsed


def run_crm_sync(server: DovecotServer, work: Path) -> float:
    key = generate_key()
    settings = Settings(
        database_url=f"sqlite:///{work / 'crm.db'}",
        data_dir=work / "data",
        internal_domains=frozenset({"northwind-sales.example"}),
        secret_keys=(key,),
    )
    app = bootstrap(settings)
    upgrade(app.engine)
    with transaction(app.sessions) as session:
        seed_defaults(session)
        seed_crm(session)
        mailboxes.add_mailbox(session, "alice", REP, server.url(USER, query="folders=INBOX"), PASSWORD, (key,))
    started = time.perf_counter()
    freeze_startup_objects()  # as `crm-sync sync` does before run_once
    report = run_once(  # as `crm-sync sync` does
        app, parse_processes=parse_processes_for_command(), fetch_process=fetch_process_for_command()
    )
    elapsed = time.perf_counter() - started
    app.close()
    failed = [m.error for m in report.mailboxes if m.error]
    stored = sum(m.stored for m in report.mailboxes)
    stats = report.stats
    print(
        f"  crm-sync run_once: {stored} stored, {stats.logged} logged, {sum(stats.skipped.values())} skipped, "
        f"{stats.duplicates} duplicates, {stats.quarantined} quarantined in {elapsed:.2f} s"
        + (f" — FAILED: {failed}" if failed else "")
    )
    return elapsed


def run_parse_only(messages: list[bytes]) -> float:
    """The floor of any sync that parses every message: the standard library alone on the same bytes."""
    started = time.perf_counter()
    parse_messages(messages)
    elapsed = time.perf_counter() - started
    print(f"  parse-only (stdlib compat32 parse, walk, decode, addresses, date): {elapsed:.2f} s")
    return elapsed


def run_own_parse(messages: list[bytes]) -> float:
    """crm-sync's own parsers on the same bytes: the headers of every message and the body of every message
    (a sync parses only the bodies of the messages it logs, so this is an upper bound of its parsing)."""
    started = time.perf_counter()
    for data in messages:
        parse_headers(data)
        parse_body(data)
    elapsed = time.perf_counter() - started
    print(f"  crm-sync's parsers (parse_headers and parse_body of every message): {elapsed:.2f} s")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("mbsync") is None or not os.access("/usr/sbin/dovecot", os.X_OK):
        sys.exit("needs dovecot-imapd and isync: apt-get install -y dovecot-imapd isync")
    work = Path(tempfile.mkdtemp(prefix="crm-sync-bench-"))
    server = DovecotServer({USER: PASSWORD})
    try:
        server.start()
        messages = generate(args.messages, args.seed)
        size = sum(len(m) for m in messages)
        server.deliver(USER, messages)
        server.doveadm("index", "-u", USER, "INBOX")  # build Dovecot's index before anything is timed
        print(f"{len(messages)} messages, {size / 1e6:.1f} MB, Dovecot on 127.0.0.1:{server.port}")
        run_mbsync(server, work, fsync=True)  # mbsync's default: fsync every message
        mbsync = min(run_mbsync(server, work, fsync=False), run_mbsync(server, work, fsync=False))
        run_connector_only(server, 500)
        parse = run_parse_only(messages)
        own_parse = run_own_parse(messages)
        ours = run_crm_sync(server, work)
        print(f"mbsync {mbsync:.2f} s | crm-sync {ours:.2f} s | ratio {ours / mbsync:.2f}x (target ≤ 1.5x)")
        print(f"parse-only {parse:.2f} s: crm-sync is {ours / parse:.2f}x the standard library parsing the mailbox, "
              f"which alone is {parse / mbsync:.2f}x mbsync; crm-sync's own parsers take {own_parse:.2f} s "
              f"({own_parse / mbsync:.2f}x mbsync)")
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

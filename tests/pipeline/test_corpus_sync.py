"""Every real-world and broken message and calendar of ../shared/corpus through a full sync.

Nothing escapes: each item ends logged, skipped with a reason, or quarantined with a reason; a second sync
changes nothing; the exports stay valid JSON. Skips where the corpus folder is absent.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_store.db import transaction
from crm_store.models import Activity, Document, QuarantineEntry, RawItem, SyncedItem
from crm_store.models.sync import DONE, QUARANTINED
from sync_service import mailboxes
from sync_service.bootstrap import App
from sync_service.exports import EXPORTS
from sync_service.pipeline.runner import run_once
from tests.conftest import shared_corpus


def _copy_corpus(corpus: Path, target: Path) -> int:
    count = 0
    for path in sorted(corpus.rglob("*")):
        if path.suffix in {".eml", ".ics"}:
            relative = path.relative_to(corpus)
            dest = target / "__".join(relative.parts)
            shutil.copyfile(path, dest)
            count += 1
    return count


def _counts(app: App) -> dict[str, int]:
    with app.sessions() as session:
        return {m.__name__: int(session.scalar(select(func.count()).select_from(m)) or 0)
                for m in (Activity, Document, SyncedItem, RawItem, QuarantineEntry)}


@pytest.mark.slow
def test_whole_corpus_syncs_without_escaping_errors(app: App, tmp_path: Path) -> None:
    corpus = shared_corpus()
    if corpus is None:
        pytest.skip("../shared/corpus is not present")
    folder = tmp_path / "corpus"
    folder.mkdir()
    copied = _copy_corpus(corpus, folder)
    # Policy "all" logs most external mail (leads are created for unknown senders), exercising body
    # decoding and document storage on every kind of broken message, not just the header path.
    app.settings = replace(app.settings, auto_create="all")
    with transaction(app.sessions) as session:
        mailboxes.add_mailbox(session, "corpus", "rep@northwind-sales.example", f"eml://{folder}", None, ())
    now = datetime(2024, 1, 1, tzinfo=UTC)
    report = run_once(app, now=now)
    assert not report.failed
    with app.sessions() as session:
        states = dict(session.execute(select(RawItem.state, func.count()).group_by(RawItem.state)).all())
        reasons = list(session.scalars(select(QuarantineEntry.reason)))
    assert sum(states.values()) == copied
    assert set(states) <= {DONE, QUARANTINED}
    assert all(r and "\n" not in r and not r.startswith("internal error") for r in reasons), reasons
    stats = report.stats
    print(f"\ncorpus: {copied} files → {stats.logged} activities, skipped {dict(stats.skipped)}, "
          f"{stats.quarantined} quarantined, {stats.leads_created} leads created")
    assert stats.logged > 50
    before = _counts(app)
    again = run_once(app, now=now)
    assert again.stats.logged == 0 and _counts(app) == before
    with app.sessions() as session:
        for exporter in EXPORTS.values():
            json.dumps(exporter(session), default=str)  # every export serialises

"""The /metrics exposition format, checked line by line (pure)."""

from __future__ import annotations

import re
from typing import Any

from sync_service.dashboard.metrics import render_metrics

SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\[\\"n])*")(,[a-z_]+="([^"\\]|\\[\\"n])*")*\})? -?[0-9.e+]+$')

STATUS: dict[str, Any] = {
    "mailboxes": [
        {"name": "alice", "state": "idle", "lag_seconds": 42, "last_success": "2026-11-02T09:00:00Z",
         "consecutive_failures": 0, "items_synced": 120, "pending": 3, "quarantined": 0},
        {"name": 'we"ird\\box\n', "state": "failed", "lag_seconds": None, "last_success": None,
         "consecutive_failures": 2, "items_synced": 0, "pending": 0, "quarantined": 1},
    ],
    "alerts": [{"mailbox": 'we"ird\\box\n', "kind": "failing", "message": "sync stopped", "reason": None}],
    "queue": {"mode": "redis", "pending": 3, "quarantined": 1, "review": 2,
              "queues": {"sync": {"ready": 4, "in_flight": 1, "delayed": 0, "dead_lettered": 2}}},
    "activities": {"email": 10, "meeting": 2},
    "skipped": {"internal": 5},
}  # fmt: skip


def test_every_line_is_valid_exposition_and_every_family_is_declared_once() -> None:
    text = render_metrics(STATUS)
    assert text.endswith("\n")
    declared: list[str] = []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            declared.append(line.split()[2])
        elif line.startswith("# TYPE "):
            assert line.split()[3] in ("gauge", "counter") and line.split()[2] == declared[-1]
        else:
            assert SAMPLE.match(line), line
            assert line.split("{")[0].split(" ")[0] == declared[-1]  # samples follow their family
    assert len(declared) == len(set(declared))


def test_values_and_escaped_labels() -> None:
    lines = set(render_metrics(STATUS).splitlines())
    assert 'crm_sync_mailbox_lag_seconds{mailbox="alice"} 42' in lines
    assert not any(line.startswith('crm_sync_mailbox_lag_seconds{mailbox="we') for line in lines)  # never synced
    assert 'crm_sync_mailbox_last_success_timestamp_seconds{mailbox="alice"} 1793610000' in lines
    assert 'crm_sync_mailbox_state{mailbox="we\\"ird\\\\box\\n",state="failed"} 1' in lines
    assert 'crm_sync_mailbox_state{mailbox="alice",state="failed"} 0' in lines
    assert 'crm_sync_mailbox_alert{mailbox="we\\"ird\\\\box\\n",kind="failing"} 1' in lines
    assert 'crm_sync_mailbox_items_synced_total{mailbox="alice"} 120' in lines
    assert 'crm_sync_queue_messages{queue="sync",state="dead_lettered"} 2' in lines
    assert 'crm_sync_queue_messages{queue="sync",state="in_flight"} 1' in lines
    assert "crm_sync_queue_up 1" in lines and "crm_sync_review_items 2" in lines
    assert 'crm_sync_activities_total{type="meeting"} 2' in lines
    assert 'crm_sync_items_skipped_total{reason="internal"} 5' in lines


def test_an_unreadable_queue_is_reported_not_hidden() -> None:
    status = STATUS | {"queue": {"mode": "redis", "queues": None, "error": "cannot read", "pending": 0,
                                 "quarantined": 0, "review": 0}}  # fmt: skip
    text = render_metrics(status)
    assert "crm_sync_queue_up 0" in text.splitlines()
    assert "crm_sync_queue_messages{" not in text


def test_live_workers_and_stuck_mailboxes_in_redis_mode_only() -> None:
    boxes = [STATUS["mailboxes"][0] | {"state": "syncing", "stuck": True}, STATUS["mailboxes"][1] | {"stuck": False}]
    lines = set(render_metrics(STATUS | {"mailboxes": boxes, "workers": {"alive": 0}}).splitlines())
    assert "crm_sync_workers_alive 0" in lines
    assert 'crm_sync_mailbox_stuck{mailbox="alice"} 1' in lines
    assert 'crm_sync_mailbox_stuck{mailbox="we\\"ird\\\\box\\n"} 0' in lines
    assert 'crm_sync_mailbox_state{mailbox="alice",state="syncing"} 1' in lines  # the stored state, unchanged
    unknown = [m | {"stuck": None} for m in boxes]  # embedded mode, or Redis unreadable: no sample, no guess
    for status in (STATUS | {"mailboxes": unknown, "workers": None}, STATUS | {"workers": {"alive": None}}):
        samples = [line for line in render_metrics(status).splitlines() if not line.startswith("#")]
        assert not any(s.startswith(("crm_sync_workers_alive", "crm_sync_mailbox_stuck")) for s in samples)

"""`crm-sync status` and `crm-sync export`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import typer
from rich.table import Table

from sync_service.cli.common import console, err_console, open_app, print_table
from sync_service.dashboard.alerts import AlertConfig
from sync_service.dashboard.webhook import notify_from_status
from sync_service.exports import EXPORTS, export
from sync_service.status import collect_status, error_is_past

ExportKind = StrEnum("ExportKind", {kind: kind for kind in EXPORTS})  # type: ignore[misc]


class Format(StrEnum):
    json = "json"
    table = "table"


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def status_command(as_json: bool = typer.Option(False, "--json", help="Machine-readable JSON.")) -> None:
    """Mailbox health (state, last success, lag, last error), the work queues and totals."""
    from workers.liveness import redis_liveness  # dramatiq and redis: only `status` needs them here
    from workers.queues import queue_status

    with open_app() as app:
        alert_config = AlertConfig.from_env()
        liveness = redis_liveness(app.settings)
        with app.sessions() as session:
            data = collect_status(
                session, queues=queue_status(app.settings), alert_config=alert_config, liveness=liveness
            )
        if notify_from_status(alert_config, app.settings.data_dir, data, datetime.now(UTC)):
            err_console.print("alert webhook called")
    if as_json:
        _print_json(data)
        return
    table = Table("mailbox", "owner", "state", "last success", "lag", "items", "pending", "quarantined", "last error")
    for m in data["mailboxes"]:
        lag = m["lag_seconds"]
        table.add_row(
            m["name"],
            m["owner"],
            "stuck" if m.get("stuck") else m["state"],
            m["last_success"] or "never",
            f"{lag // 60} min" if lag is not None else "-",
            str(m["items_synced"]),
            str(m["pending"]),
            str(m["quarantined"]),
            _error_cell(m),
        )
    print_table(table)
    for alert in data["alerts"]:
        console.print(f"ALERT {alert['mailbox']} {alert['kind']}: {alert['message']}", markup=False)
    for m in data["mailboxes"]:
        if m.get("stuck"):
            console.print(
                f"STUCK {m['name']}: syncing, but no worker holds its lock — is a worker running?", markup=False
            )
    workers = data.get("workers")
    if workers and workers.get("alert"):
        console.print(f"WARNING {workers['alert']}", markup=False)
    q = data["queue"]
    console.print(
        f"queue ({q['mode']}): {q['pending']} pending, {q['quarantined']} quarantined, {q['review']} awaiting review"
    )
    if q.get("error"):
        console.print(f"queues: {q['error']}")
    for name, n in (q.get("queues") or {}).items() if q["mode"] == "redis" else ():
        console.print(
            f"  {name}: {n['ready']} ready, {n['in_flight']} in flight, {n['delayed']} delayed, "
            f"{n['dead_lettered']} dead-lettered"
        )
    if workers:
        alive = workers.get("alive")
        stopping = f" ({workers['stopping']} stopping)" if workers.get("stopping") else ""
        line = f"workers: {workers['error']}" if alive is None else f"workers: {alive} alive{stopping}"
        console.print(line, markup=False)
    console.print("activities: " + (", ".join(f"{k} {v}" for k, v in data["activities"].items()) or "none"))
    if data["skipped"]:
        console.print("skipped: " + ", ".join(f"{k} {v}" for k, v in data["skipped"].items()))


def export_command(
    kind: ExportKind = typer.Argument(..., metavar="KIND", help="What to export.", show_default=False),
    fmt: Format = typer.Option(Format.table, "--format", help="json: one JSON array on standard output."),
) -> None:
    """Export CRM data; --format json prints one JSON array (the contract other programs read)."""
    with open_app() as app, app.sessions() as session:
        rows = export(session, kind.value)
    if fmt is Format.json:
        _print_json(rows)
        return
    if not rows:
        console.print(f"no {kind.value}")
        return
    columns = list(rows[0])
    table = Table(*columns)
    for row in rows:
        table.add_row(*(_cell(row[c]) for c in columns))
    print_table(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _error_cell(m: dict[str, Any]) -> str:
    """The last error, cut short; marked as over when a successful sync came after it."""
    error = (m["last_error"] or "")[:60]
    return f"(over) {error}" if error and error_is_past(m.get("last_error_at"), m.get("last_success")) else error

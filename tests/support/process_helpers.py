"""Helpers for the process tests: calendar files, and the exports' view of opportunities, leads, activities."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sync_service.bootstrap import App
from sync_service.exports import export_activities, export_leads, export_opportunities


def write_calendar(box: Path, data: bytes) -> None:
    """Write the calendar file (making ``box``) as a visibly newer version than any before it, even on coarse
    file clocks and when the previous version was itself dated ahead."""
    box.mkdir(parents=True, exist_ok=True)
    path = box / "calendar.ics"
    old = path.stat().st_mtime_ns if path.exists() else 0
    path.write_bytes(data)
    stamp = max(old, path.stat().st_mtime_ns) + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def opportunity(app: App, title: str) -> dict[str, Any]:
    with app.sessions() as session:
        return next(o for o in export_opportunities(session) if o["title"] == title)


def lead(app: App, name: str) -> dict[str, Any]:
    with app.sessions() as session:
        return next(x for x in export_leads(session) if x["name"] == name)


def activities(app: App, **where: object) -> list[dict[str, Any]]:
    with app.sessions() as session:
        return [a for a in export_activities(session) if all(a[k] == v for k, v in where.items())]


def history(app: App, title: str) -> list[tuple[str, str | None, str | None, bool]]:
    return [(h["stage"], h["step"], h["result"], h["automatic"]) for h in opportunity(app, title)["history"]]

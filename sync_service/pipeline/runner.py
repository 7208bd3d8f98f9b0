"""Run a full sync in the foreground: every mailbox's folders, then processing, then due activities.

This is the code path of ``crm-sync sync --once`` and ``crm-sync demo``; the workers (issue 3) call the same
functions per mailbox / per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select, update

from crm_store.db import transaction
from crm_store.models import Activity, Mailbox
from crm_store.models.sync import DEGRADED, FAILED, IDLE, PAUSED, SYNCING
from crm_store.secrets import SecretBox
from sync_service.bootstrap import App
from sync_service.connectors.registry import open_connector
from sync_service.errors import ConfigError, PermanentSourceError, SourceError
from sync_service.pipeline.context import ProcessStats
from sync_service.pipeline.fetch import sync_folder
from sync_service.pipeline.process import process_pending

log = logging.getLogger(__name__)
DEGRADED_AFTER = 3  # consecutive transient failures before a mailbox shows as degraded


@dataclass
class MailboxResult:
    name: str
    stored: int = 0
    deleted: int = 0
    error: str | None = None
    state: str = IDLE


@dataclass
class SyncReport:
    mailboxes: list[MailboxResult] = field(default_factory=list)
    stats: ProcessStats = field(default_factory=ProcessStats)
    completed: int = 0

    @property
    def failed(self) -> list[MailboxResult]:
        return [m for m in self.mailboxes if m.error]


def _secret(app: App, mailbox: Mailbox) -> str | None:
    if mailbox.secret is None:
        return None
    return SecretBox(app.settings.secret_keys).decrypt(mailbox.secret)


def _set_state(app: App, mailbox_id: int, **values: object) -> None:
    with transaction(app.sessions) as session:
        session.execute(update(Mailbox).where(Mailbox.id == mailbox_id).values(**values))


def sync_mailbox(app: App, mailbox: Mailbox, on_page: Callable[[int], None] | None = None) -> MailboxResult:
    """Fetch every folder of one mailbox into raw items. Errors are recorded on the mailbox, not raised."""
    result = MailboxResult(mailbox.name)
    _set_state(app, mailbox.id, state=SYNCING)
    now = datetime.now(UTC)
    try:
        connector = open_connector(mailbox.source_url, _secret(app, mailbox))
        try:
            for folder in connector.folders():
                folder_result = sync_folder(app, mailbox.id, connector, folder, on_page)
                result.stored += folder_result.stored
                result.deleted += folder_result.deleted
        finally:
            connector.close()
    except (PermanentSourceError, ConfigError) as error:
        result.error, result.state = str(error), FAILED
        _set_state(
            app,
            mailbox.id,
            state=FAILED,
            last_error=str(error),
            last_error_at=now,
            consecutive_failures=Mailbox.consecutive_failures + 1,
        )
        return result
    except (SourceError, OSError) as error:
        result.error = str(error) or type(error).__name__
        failures = mailbox.consecutive_failures + 1
        result.state = DEGRADED if failures >= DEGRADED_AFTER else IDLE
        _set_state(
            app,
            mailbox.id,
            state=result.state,
            last_error=result.error,
            last_error_at=now,
            consecutive_failures=failures,
        )
        return result
    _set_state(
        app,
        mailbox.id,
        state=IDLE,
        last_success_at=now,
        consecutive_failures=0,
        items_synced=Mailbox.items_synced + result.stored,
    )
    return result


def complete_due(app: App, now: datetime | None = None) -> int:
    """Planned meetings and calls whose end has passed become completed (SPEC §4)."""
    now = now or datetime.now(UTC)
    with transaction(app.sessions) as session:
        result = session.execute(
            update(Activity)
            .where(
                Activity.status == "planned",
                Activity.type.in_(("meeting", "call")),
                Activity.origin == "sync",
                Activity.end_at <= now,
            )
            .values(status="completed")
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def selected_mailboxes(app: App, names: list[str] | None) -> list[Mailbox]:
    with app.sessions() as session:
        stmt = select(Mailbox).order_by(Mailbox.id)
        if names:
            stmt = stmt.where(Mailbox.name.in_(names))
        mailboxes = list(session.scalars(stmt))
    if names:
        missing = sorted(set(names) - {m.name for m in mailboxes})
        if missing:
            raise ConfigError(f"no mailbox named {', '.join(missing)}")
    return mailboxes


def run_once(
    app: App,
    names: list[str] | None = None,
    on_page: Callable[[int], None] | None = None,
    now: datetime | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> SyncReport:
    """Sync the mailboxes (all, or ``names``) to the end, process everything, complete due activities."""
    report = SyncReport()
    for mailbox in selected_mailboxes(app, names):
        if mailbox.state == PAUSED:
            report.mailboxes.append(MailboxResult(mailbox.name, state=PAUSED))
            continue
        report.mailboxes.append(sync_mailbox(app, mailbox, on_page))
    report.stats = process_pending(app, now=now, on_progress=on_progress)
    report.completed = complete_due(app, now)
    return report

"""The steps of a sync, and ``run_once``: every mailbox's folders, then processing, then due activities.

The workers' actors (``workers/actors.py``) call these steps by id: ``sync_mailbox`` per mailbox,
``process_pending`` for the pending raw items, ``complete_due``. ``run_once`` — the code path of
``crm-sync sync --once`` and ``crm-sync demo`` — runs those same actors on the embedded in-process queue
(``workers/embedded.py``): enqueue one sync per mailbox, drain the queue, then processing, then due activities.

Mailbox states: ``idle`` → ``syncing`` (while a worker holds its lock) → ``idle``; a transient error leaves it
``idle`` with ``last_error`` set, and ``degraded`` after ``DEGRADED_AFTER`` failed syncs in a row (a sync and
the workers' retries of it count once: ``count_failure``); a permanent one
(bad credentials, missing folder) makes it ``failed`` until ``mailbox resume``. ``paused`` is set by a person
and never overwritten by a sync.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import Select, case, exists, select, update

from crm_store.db import transaction
from crm_store.models import Activity, FolderState, ItemSource, Mailbox, RawItem
from crm_store.models.sync import DEGRADED, DELETED, FAILED, IDLE, PAUSED, SYNCING
from crm_store.secrets import SecretBox
from sync_service.bootstrap import App
from sync_service.connectors.registry import open_connector
from sync_service.errors import ConfigError, PermanentSourceError, SourceError, TransientSourceError
from sync_service.pipeline.context import ProcessStats
from sync_service.pipeline.fetch import sync_folder
from sync_service.pipeline.pending import pending_items
from sync_service.redact import redact_secret, redacted_error

log = logging.getLogger(__name__)
_T = TypeVar("_T")
DEGRADED_AFTER = 3  # consecutive transient failures before a mailbox shows as degraded


@dataclass
class MailboxResult:
    name: str
    stored: int = 0
    deleted: int = 0
    quarantined: int = 0  # over the size limit as they were fetched (the processing counts its own)
    error: str | None = None
    state: str = IDLE
    transient: bool = False  # the error may go away: the workers retry with backoff
    retry_after: float | None = None  # seconds the source asked us to wait (throttling), if it said


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
    """Update a mailbox; its state changes only if a person has not paused it meanwhile."""
    if "state" in values:
        values["state"] = case((Mailbox.state == PAUSED, PAUSED), else_=values["state"])
    with transaction(app.sessions) as session:
        session.execute(update(Mailbox).where(Mailbox.id == mailbox_id).values(**values))


def _stored_secret(app: App, mailbox: Mailbox) -> str | None:
    """The mailbox's secret for masking it; ``None`` when it cannot be decrypted (then no connector had it)."""
    try:
        return _secret(app, mailbox)
    except ConfigError:
        return None


def record_failure(app: App, mailbox_id: int, message: str, permanent: bool, count_failure: bool = True) -> str:
    """Note a failed sync on the mailbox and return its new state (``failed``, ``degraded`` or ``idle``).

    ``count_failure=False``: a retry of a sync already counted — ``last_error`` is updated, the count of failed
    syncs in a row (``consecutive_failures``, which makes ``degraded`` and the dashboard's alerts) is not.

    ``message`` may quote a server or a library that echoed the secret: it is masked here, where every failure
    is written (the dashboard and ``status`` show this column), and before it is cut short, so that no end of
    a secret is left at the cut."""
    with transaction(app.sessions) as session:
        mailbox = session.get(Mailbox, mailbox_id)
        if mailbox is None:
            return FAILED
        message = redact_secret(message, _stored_secret(app, mailbox))
        if count_failure or mailbox.consecutive_failures == 0:
            mailbox.consecutive_failures += 1
        mailbox.last_error, mailbox.last_error_at = message[:2000], datetime.now(UTC)
        if mailbox.state != PAUSED:
            if permanent:
                mailbox.state = FAILED
            else:
                mailbox.state = DEGRADED if mailbox.consecutive_failures >= DEGRADED_AFTER else IDLE
        return mailbox.state


def _keep_rotated_secret(app: App, mailbox_id: int, connector: object) -> str | None:
    """A source whose secret rotates (a delegated Graph token cache) hands the new one back: store it encrypted.
    Returns it (``None``: unchanged)."""
    rotated = getattr(connector, "rotated_secret", None)
    secret = rotated() if callable(rotated) else None
    if secret:
        encrypted = SecretBox(app.settings.secret_keys).encrypt(secret)
        with transaction(app.sessions) as session:
            session.execute(update(Mailbox).where(Mailbox.id == mailbox_id).values(secret=encrypted))
    return secret or None


def sync_mailbox(
    app: App,
    mailbox: Mailbox,
    on_page: Callable[[int], None] | None = None,
    folders: Sequence[str] | None = None,
    count_failure: bool = True,
) -> MailboxResult:
    """Fetch every folder (or only ``folders``) of one mailbox into raw items.

    ``count_failure=False`` for a retry: its failure does not count as one more failed sync (``record_failure``).

    Source errors are recorded on the mailbox and returned, not raised. Anything ``on_page`` raises (a lost
    lock, a pause) propagates and leaves the mailbox ``syncing``: what was stored stays, with its cursor.

    No error text leaves here with the mailbox's secret in it (SPEC §6): whatever the connector, the secret —
    and a rotated one — is masked in the result, and an unexpected error that quotes it is replaced by a
    ``RedactedError`` (the workers log and report what is raised here).
    """
    result = MailboxResult(mailbox.name)
    _set_state(app, mailbox.id, state=SYNCING)
    secret: str | None = None  # known here, to be masked in whatever error leaves
    rotated: str | None = None
    try:
        secret = _secret(app, mailbox)
        connector = open_connector(mailbox.source_url, secret)
        try:
            for folder in folders if folders is not None else connector.folders():
                folder_result = sync_folder(app, mailbox.id, connector, folder, on_page)
                result.stored += folder_result.stored
                result.deleted += folder_result.deleted
                result.quarantined += folder_result.quarantined
        finally:
            rotated = _keep_rotated_secret(app, mailbox.id, connector)
            connector.close()
    except (PermanentSourceError, ConfigError) as error:
        result.error = redact_secret(str(error) or type(error).__name__, secret, rotated)
        result.state = record_failure(app, mailbox.id, result.error, True, count_failure)
        return result
    except (SourceError, OSError) as error:
        result.error = redact_secret(str(error) or type(error).__name__, secret, rotated)
        result.transient = True
        result.retry_after = error.retry_after if isinstance(error, TransientSourceError) else None
        result.state = record_failure(app, mailbox.id, result.error, False, count_failure)
        return result
    except Exception as error:  # a bug, a lost lock, a pause: raised as it is, unless it quotes the secret
        masked = redacted_error(error, secret, rotated)
        if masked is not None:
            raise masked from None  # from None: a traceback would print the original's text as its cause
        raise
    _set_state(
        app,
        mailbox.id,
        state=IDLE,
        last_success_at=datetime.now(UTC),
        consecutive_failures=0,
    )
    return result


def complete_due(app: App, now: datetime | None = None, converted: set[int] | None = None) -> int:
    """Planned meetings and calls whose end has passed become completed (SPEC §4), and the process engine
    completes the steps they serve — in one transaction. Advancements that failed before (quarantine entries
    ``activity:<id>``, e.g. a broken process definition) are tried again first (``process.service``). The leads
    a completed step made an opportunity of are added to ``converted`` (their items are to be matched again)."""
    from sync_service.process.service import complete_and_advance, take_converted  # the engine sits on the pipeline

    now = now or datetime.now(UTC)
    with transaction(app.sessions) as session:
        count = complete_and_advance(session, list(session.scalars(due_activities(now))), now)
        leads = take_converted(session)
    if converted is not None:
        converted.update(leads)
    return count


def due_activities(now: datetime) -> Select[int]:
    """The synced planned meetings and calls that have ended, oldest first (found by the partial index
    ``ix_activities_planned_end_at``: a run's search does not grow with the mail).

    Only those some mailbox still carries (an item source is left): a meeting whose every copy went with a
    removed mailbox cannot be known to have taken place, and must not complete a process step by itself
    (``sync_service.orphan_meetings``; audit 17b F4)."""
    carried = (  # a copy deleted at its source carries nothing (``events._still_carried``)
        select(ItemSource.id)
        .join(RawItem, RawItem.id == ItemSource.raw_item_id)
        .where(ItemSource.item_id == Activity.item_id, RawItem.state != DELETED)
    )
    return (
        select(Activity.id)
        .where(
            Activity.status == "planned",
            Activity.type.in_(("meeting", "call")),
            Activity.origin == "sync",
            Activity.end_at <= now,
            exists(carried),
        )
        .order_by(Activity.end_at, Activity.id)
    )


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
    parse_processes: int | None = None,
    fetch_process: bool = False,
) -> SyncReport:
    """Sync the mailboxes (all, or ``names``) to the end, process everything, complete due activities.

    The work runs on the embedded queue — the same actors the Redis workers run — so this is the one code path.
    ``parse_processes``: parser processes for the processing (``pipeline.preparse``; None: ``CRM_PARSE_PROCESSES``,
    default 0). They are started with ``spawn``, so a script that asks for them keeps its own start-up code
    under ``if __name__ == "__main__":``.

    ``fetch_process``: when a mailbox syncs for the first time (no cursor stored yet: the large syncs), fetch
    in a forked process while this one processes each stored page (``workers.fetch_ahead``). Where a fork is
    not safe, or the child dies, the fetch runs here as before.
    """
    from workers.embedded import EmbeddedQueue, Hooks  # the workers layer sits on top of the pipeline
    from workers.fetch_ahead import FetchAhead

    report = SyncReport()
    boxes = selected_mailboxes(app, names)
    # A paused mailbox is not synced; nor a failed one (bad credentials, a missing folder) until a person resumes
    # it: logging in again and again with a rejected password can lock the account.
    syncing = [(m.id, m.name) for m in boxes if m.state not in (PAUSED, FAILED)]
    ahead = FetchAhead.start(app, syncing, on_page) if fetch_process and _first_sync(app, syncing) else None
    outcomes: dict[int, object] = {}
    followed: object = None  # what the processing run that followed the fetch process returned
    hooks = Hooks(
        on_page=on_page,
        on_progress=on_progress,
        now=now,
        parse_processes=parse_processes,
        follow=ahead.progress if ahead is not None else None,
    )
    try:
        with EmbeddedQueue(app, hooks) as queue:
            if ahead is not None:
                queue.send("process_items")  # follows the fetch process page by page
                queue.join()
                followed = queue.outcome("process_items")
                outcomes.update(ahead.outcomes())
            left = [mailbox_id for mailbox_id, _name in syncing if mailbox_id not in outcomes]
            for mailbox_id in left:
                queue.send("sync_mailbox", mailbox_id)
            queue.join()
            outcomes.update((mailbox_id, queue.outcome("sync_mailbox", mailbox_id)) for mailbox_id in left)
            if ahead is None or left or _anything_pending(app):  # a page committed behind the one followed
                queue.send("process_items")
                queue.join()
            queue.send("complete_due")
            queue.join()
    finally:
        if ahead is not None:
            ahead.stop()
    for mailbox in boxes:
        if mailbox.state == PAUSED:
            report.mailboxes.append(MailboxResult(mailbox.name, state=PAUSED))
        elif mailbox.state == FAILED:
            report.mailboxes.append(MailboxResult(mailbox.name, error=not_retried(mailbox), state=FAILED))
        else:
            report.mailboxes.append(mailbox_outcome(mailbox.name, outcomes.get(mailbox.id)))
    report.stats = _expect(queue.outcome("process_items"), ProcessStats, "processing")
    if isinstance(followed, ProcessStats) and followed is not report.stats:  # the fetch's pages, then the rest
        report.stats.merge(followed)
    report.completed = _expect(queue.outcome("complete_due"), int, "completing due activities")
    return report


def not_retried(mailbox: Mailbox) -> str:
    """Why a failed mailbox was not synced, and what to do."""
    reason = mailbox.last_error or "a permanent error"
    return f"{reason} — not retried until `crm-sync mailbox resume {mailbox.name}`"


def _first_sync(app: App, mailboxes: Sequence[tuple[int, str]]) -> bool:
    """Is any of ``mailboxes`` about to sync for the first time (no folder cursor stored yet)?"""
    ids = [mailbox_id for mailbox_id, _name in mailboxes]
    with app.sessions() as session:
        started = set(
            session.scalars(
                select(FolderState.mailbox_id).where(FolderState.mailbox_id.in_(ids), FolderState.cursor.is_not(None))
            )
        )
    return any(mailbox_id not in started for mailbox_id in ids)


def _anything_pending(app: App) -> bool:
    with app.sessions() as session:
        return session.scalar(pending_items(None, 0, 1, RawItem.id)) is not None  # type: ignore[call-overload]


def _expect(outcome: object, kind: type[_T], what: str) -> _T:
    """The result of a step of ``run_once``; its error (after the retries) is raised as it was."""
    if isinstance(outcome, kind):
        return outcome
    raise outcome if isinstance(outcome, Exception) else RuntimeError(f"{what} did not run")


def mailbox_outcome(name: str, outcome: object) -> MailboxResult:
    """A mailbox's line of the report, from what its ``sync_mailbox`` returned or raised (None: it did not run)."""
    if isinstance(outcome, MailboxResult):
        return outcome
    if isinstance(outcome, Exception):
        return MailboxResult(name, error=f"{type(outcome).__name__}: {outcome}", state=FAILED)
    return MailboxResult(name, error="the sync did not run (the mailbox is locked by another sync)", state=SYNCING)

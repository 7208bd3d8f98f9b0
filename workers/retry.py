"""The retry policy, as data for dramatiq's ``Retries`` middleware.

- Transient trouble (network, server busy, throttling, a database restart, a lost lock, an unexpected bug) is
  retried up to ``max_retries`` times with exponential backoff and jitter (dramatiq's ``compute_backoff``:
  ``min_backoff · 2^n``, times a random 1–2, capped). When the source named a delay (``Retry-After``,
  ``BackOffMilliseconds``), that delay plus up to 20 % jitter is used instead (capped by ``max_backoff``).
- Permanent errors (bad credentials, missing folder, bad configuration) are never retried: the task has already
  marked the mailbox ``failed`` with the reason.
- A message whose retries are exhausted is dead-lettered (Redis: ``dramatiq:<queue>.XQ``) and can be requeued
  with ``crm-sync queue requeue-dead``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import dramatiq

from sync_service.errors import ConfigError, PermanentSourceError
from sync_service.pipeline.runner import MailboxResult

PERMANENT: tuple[type[BaseException], ...] = (PermanentSourceError, ConfigError)


class TransientFailure(dramatiq.Retry):
    """A sync failed for a reason that may go away. Carries the mailbox result (for reports) and, when the
    source asked for one, the delay; a ``dramatiq.Retry`` so that it is retried without an error traceback."""

    def __init__(self, result: MailboxResult, max_delay_ms: int) -> None:
        delay = None
        if result.retry_after is not None:
            delay = min(throttle_delay_ms(result.retry_after), max_delay_ms)
        super().__init__(f"mailbox {result.name}: {result.error}", delay=delay)
        self.result = result


def throttle_delay_ms(retry_after: float) -> int:
    """The delay the source asked for, in milliseconds, plus up to 20 % jitter so retries do not stampede."""
    return max(1, int(retry_after * 1000 * random.uniform(1.0, 1.2)))


def make_retry_when(max_retries: int) -> Callable[[int, BaseException], bool]:
    """``retry_when`` for dramatiq's ``Retries``: anything but a permanent error, ``max_retries`` times."""

    def retry_when(retries: int, error: BaseException) -> bool:
        return retries < max_retries and not isinstance(error, PERMANENT)

    return retry_when

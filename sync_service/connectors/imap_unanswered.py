"""Mailboxes whose server just failed to answer in time, remembered by this process for ``HOLD`` seconds
(audit 17a F12).

A server that accepts connections and never greets costs a whole ``timeout`` per attempt, and one that trickles
a whole ``deadline``. Without a memory, ``sync --once`` multiplies that by the connector's five attempts and by
the run's four (the embedded queue's three retries): about 20 minutes per dead server with the defaults. So the
first such failure is remembered under the mailbox (``user@host:port``), the connector does not reconnect after
it, and every further attempt of this process within ``HOLD`` seconds — the run's retries, a watch's reconnects
— fails at once with the remembered reason. Another mailbox, even on the same server, pays its own first
attempt (a large provider's host name stands for many machines). A connection that is answered forgets it.

Only answers that never came count: a refused connection or one cut in the middle costs little and is retried
as before, and so is a connection that stalls after the greeting (a network path lost mid-sync).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

HOLD = 60.0  # seconds: longer than the embedded queue's retries of one sync (1 + 2 + 4 s, times up to 2)


@dataclass(frozen=True, slots=True)
class _Failure:
    at: float
    reason: str


class Unanswered:
    """Thread-safe (the embedded queue runs syncs on worker threads); ``clock`` is injectable for tests."""

    def __init__(self, hold: float = HOLD, clock: Callable[[], float] = time.monotonic) -> None:
        self.hold, self._clock = hold, clock
        self._failures: dict[str, _Failure] = {}
        self._lock = threading.Lock()

    def note(self, where: str, reason: str) -> None:
        with self._lock:
            self._failures[where] = _Failure(self._clock(), reason)

    def forget(self, where: str) -> None:
        with self._lock:
            self._failures.pop(where, None)

    def held(self, where: str) -> str | None:
        """Why ``where`` is not to be tried now (one line), or None: try it."""
        with self._lock:
            failure = self._failures.get(where)
            now = self._clock()
            if failure is None or now - failure.at >= self.hold:
                self._failures.pop(where, None)
                return None
        ago, wait = now - failure.at, failure.at + self.hold - now
        return f"{failure.reason} ({ago:.0f} s ago; not tried again for another {wait:.0f} s)"

    def clear(self) -> None:
        with self._lock:
            self._failures.clear()


UNANSWERED = Unanswered()  # this process's memory

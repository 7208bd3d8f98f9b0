"""How far a fetch running beside the processing has got, as the processing run that follows it sees it.

``run_once`` can fetch in a process of its own (``workers.fetch_ahead``) while this process processes what
each stored page brought. The processing run then does not end when it finds nothing pending: it waits for
the next page, and ends only once the fetch has ended and nothing is left. Pages are committed before they
are reported, so a query made after ``done`` was seen finds every item the fetch stored.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Seen:
    """What a follower knew before it looked for pending items."""

    pages: int
    done: bool


class FetchProgress:
    """Pages stored by a fetch, and whether it has ended. Thread-safe: the fetch's reporter sets it, the
    processing run reads it."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._pages = 0
        self._items = 0
        self._done = False

    def page_stored(self, items: int) -> None:
        with self._changed:
            self._pages += 1
            self._items += items
            self._changed.notify_all()

    def finish(self) -> None:
        """The fetch has ended (or died): nothing more will come."""
        with self._changed:
            self._done = True
            self._changed.notify_all()

    @property
    def done(self) -> bool:
        with self._changed:
            return self._done

    @property
    def items(self) -> int:
        """Items the fetch has stored so far (the processing's progress total grows with it)."""
        with self._changed:
            return self._items

    def seen(self) -> Seen:
        with self._changed:
            return Seen(self._pages, self._done)

    def wait(self, seen: Seen, timeout: float) -> None:
        """Until a page after ``seen`` is stored, the fetch ends, or ``timeout`` seconds pass."""
        with self._changed:
            self._changed.wait_for(lambda: self._pages != seen.pages or self._done != seen.done, timeout)

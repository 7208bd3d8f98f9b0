"""How long one IMAP command may take in all (audit 17a F6): the budget arithmetic, no I/O.

The socket timeout (``timeout=``) bounds each wait for the next bytes, and a server that sends one byte every
few seconds never trips it: one command could last for ever. So every command also has a budget, counted from
the moment it is sent (the greeting: from the moment of connecting) to the last byte of its answer::

    budget = deadline + PER_MESSAGE × messages asked for (a UID FETCH batch) + bytes received / MIN_RATE

``deadline`` is the source URL's ``deadline=`` (default: twice ``timeout``). The two allowances keep a large batch
from a real server — slow to render each message, or sending many megabytes over a slow link — far under its
budget, while a trickle gains nothing from them (a byte every 5 s earns 15 µs). ``imap_client.py`` does the
reading and raises when the budget is spent.
"""

from __future__ import annotations

from dataclasses import dataclass

PER_MESSAGE = 1.0  # seconds of allowance per message asked for in one FETCH
MIN_RATE = 64 * 1024  # bytes per second: every byte received earns 1 / MIN_RATE seconds


def default_deadline(timeout: float) -> float:
    """The budget of a command when the URL names none: twice the socket timeout (120 s by default)."""
    return 2 * timeout


@dataclass(slots=True)
class CommandClock:
    """The budget of the command under way: ``start`` when it is sent, ``received`` as bytes arrive, ``left``
    before each read. ``messages`` is the allowance's message count for the commands started while it is set."""

    deadline: float
    messages: int = 0
    started: float | None = None  # None: no command sent yet (nothing to bound)
    received: int = 0

    def start(self, now: float) -> None:
        self.started, self.received = now, 0

    def note(self, count: int) -> None:
        self.received += max(0, count)

    def budget(self) -> float:
        return self.deadline + PER_MESSAGE * self.messages + self.received / MIN_RATE

    def left(self, now: float) -> float | None:
        """Seconds the answer may still take (≤ 0: spent), or None when no command was started."""
        if self.started is None:
            return None
        return self.started + self.budget() - now

    def spent(self, now: float) -> float:
        return 0.0 if self.started is None else now - self.started

"""Plain words for what the sync records: errors an admin can act on, durations, states (pure)."""

from __future__ import annotations

import re

# (pattern over the raw error, what it means and what to do), first match wins.
_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), words)
    for pattern, words in (
        (r"throttl|rate limit|\b429\b|too many requests|server busy|ErrorServerBusy",
         "The server asked us to slow down (throttling); the sync waits and retries by itself."),
        (r"no password or token is stored",
         "No password or token is stored for this mailbox: remove and add it again with --secret-env."),
        (r"credential|login failed|authenticat|access refused|unauthori[sz]ed|invalid_grant|\b40[13]\b",
         "The server refused the login: check the user name and the stored password or token, then resume."),
        (r"certificate|TLS|SSL",
         "The server's TLS certificate is not trusted: fix the certificate or the host name, then resume."),
        (r"source path does not exist|no such file|not found|no (IMAP )?folder|no calendar|\b404\b",
         "The mailbox, folder or file was not found at the source: correct the URL with "
         "`crm-sync mailbox source NAME URL`, or resume once it is back."),
        (r"timed? ?out|timeout",
         "The server did not answer in time; the sync retries by itself."),
        (r"connection|refused|unreachable|resolve|name or service|network|dns",
         "The server could not be reached (network or DNS); the sync retries by itself."),
        (r"server error|5\d\d\b",
         "The server had an internal error; the sync retries by itself."),
        (r"decrypt|secret key|InvalidToken",
         "The stored secret cannot be decrypted: check CRM_SECRET_KEY (all keys in use), then resume."),
    )
)  # fmt: skip

STATE_WORDS = {
    "idle": "OK",
    "syncing": "Syncing",
    "paused": "Paused",
    "failed": "Failed",
    "degraded": "Degraded",
}
STUCK_WORDS = "Stuck"  # shown instead of "Syncing" when no worker holds the mailbox's lock (Redis mode)
STUCK_HINT = "No worker holds its lock: is a worker running? The scheduler queues it again."


def plain_error(error: str | None) -> str:
    """What an error means for an admin, in one sentence; the raw text is shown beside it."""
    if not error:
        return "no error recorded"
    for pattern, words in _ERRORS:
        if pattern.search(error):
            return words
    return "The last sync failed; the details below tell why."


def is_throttled(state: str, error: str | None) -> bool:
    """The last failure was the source asking us to slow down (a transient state, retried by itself)."""
    return bool(error) and state not in ("failed", "paused") and _ERRORS[0][0].search(error or "") is not None


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``1 failed sync``, ``3 failed syncs``, ``2,500 pending items``; ``nouns``: an irregular plural
    (``stuck mailboxes``)."""
    return f"{n:,} {noun if n == 1 else nouns or noun + 's'}"


def duration(seconds: int | float | None) -> str:
    """``95`` → ``1 min``; ``7300`` → ``2 h 1 min``; ``200000`` → ``2 d 7 h``."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 3600:
        return f"{minutes} min"
    if s < 86400:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    return f"{days} d {hours % 24} h" if hours % 24 else f"{days} d"

"""Exception families shared by connectors, parsers and the pipeline.

The split matters to the workers: a ``TransientSourceError`` is retried with backoff, a
``PermanentSourceError`` marks the mailbox ``failed`` and stops retrying, a ``ParseError`` quarantines
one item and lets the sync go on.
"""

from __future__ import annotations


class CrmSyncError(Exception):
    """Base class of every error this package raises on purpose."""


class ParseError(CrmSyncError):
    """One item (message, calendar, card, CSV row) cannot be understood. The reason is one line."""


class SourceError(CrmSyncError):
    """A mail or calendar source failed."""


class TransientSourceError(SourceError):
    """Network trouble, server busy, throttling: retry later.

    ``retry_after`` is the delay the server asked for, in seconds, when it named one.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentSourceError(SourceError):
    """Bad credentials, missing folder, unsupported source: retrying will not help."""


class ConfigError(CrmSyncError):
    """Configuration or usage that cannot work (bad URL, missing secret, unknown name)."""


class ImportFileError(CrmSyncError):
    """A CSV / vCard import file is rejected whole. ``line`` is 1-based (header = line 1)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)

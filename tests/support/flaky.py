"""A source that fails on purpose: ``flaky:///path/to/maildir?…`` — a Maildir behind a misbehaving server.

Registered for a test (and for the worker processes it starts) through the connector registry's extension
point: ``CRM_EXTRA_CONNECTORS=flaky=tests.support.flaky:FlakyConnector``.

Query parameters:

- ``throttle=N&retry_after=S`` — the first N listings answer "server busy" with a Retry-After of S seconds
  (``TransientSourceError``). The count is kept in the file ``counter=PATH`` so that it holds across retries
  and across worker processes.
- ``auth=fail`` — every connection is refused with "authentication failed" (``PermanentSourceError``);
  with ``counter=PATH`` each attempt is counted.
- ``delay=S`` — each listing takes S seconds more (a slow server: makes a sync long enough to interrupt).
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from sync_service.connectors.base import ChangePage, ItemRef, RawItem
from sync_service.connectors.maildir import MaildirConnector
from sync_service.errors import PermanentSourceError, TransientSourceError

SCHEME_ENTRY = "flaky=tests.support.flaky:FlakyConnector"


def flaky_url(path: Path, **params: object) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"flaky://{path}" + (f"?{query}" if query else "")


def bump(counter: Path) -> int:
    """Add one to the number in ``counter`` (under a file lock) and return the new value."""
    with open(counter, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        value = int(handle.read().strip() or 0) + 1
        handle.seek(0)
        handle.truncate()
        handle.write(str(value))
        return value


class FlakyConnector:
    needs_secret = False

    def __init__(self, url: str, secret: str | None = None) -> None:
        parts = urlsplit(url)
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.counter = Path(params["counter"]) if "counter" in params else None
        if params.get("auth") == "fail":
            if self.counter is not None:
                bump(self.counter)  # count the attempts: a permanent error must not be retried
            raise PermanentSourceError("authentication failed: the server rejected the credentials")
        self.throttle = int(params.get("throttle", 0))
        self.retry_after = float(params.get("retry_after", 1))
        self.delay = float(params.get("delay", 0))
        self.inner = MaildirConnector(f"maildir://{parts.path}")

    def folders(self) -> Sequence[str]:
        return self.inner.folders()

    def list_changes(self, folder: str, cursor: str | None, limit: int = 500) -> ChangePage:
        if self.throttle and self.counter is not None and bump(self.counter) <= self.throttle:
            raise TransientSourceError("server busy: too many requests", retry_after=self.retry_after)
        if self.delay:
            time.sleep(self.delay)
        return self.inner.list_changes(folder, cursor, limit)

    def fetch(self, folder: str, refs: Sequence[ItemRef]) -> Iterator[RawItem]:
        return self.inner.fetch(folder, refs)

    def close(self) -> None:
        self.inner.close()

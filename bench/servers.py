"""Throw-away servers for the benchmarks, from the test suite's own (``tests.support.servers``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal


@contextmanager
def throwaway(kind: Literal["PostgresServer", "RedisServer"]) -> Iterator[tuple[str | None, str]]:
    """A server on 127.0.0.1 for the block: ``(url, "")``, or ``(None, reason)`` when it cannot run here."""
    try:
        from tests.support import servers
    except ImportError as error:  # the test extras (pytest) are not installed
        yield None, f"tests.support.servers unavailable ({error})"
        return
    server = getattr(servers, kind)()
    missing = server.unavailable()
    if missing is not None:
        server.close()
        yield None, f"no {missing}"
        return
    try:
        url = server.start()
    except (KeyboardInterrupt, SystemExit):
        server.close()
        raise
    except BaseException as error:  # the servers skip/fail through pytest outcomes outside CI too
        server.close()
        yield None, f"{server.name} did not start: {error}"
        return
    try:
        yield url, ""
    finally:
        server.close()

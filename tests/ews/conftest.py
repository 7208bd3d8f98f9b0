"""Fixtures of the EWS tests: the loopback EWS server holding both reps' mailboxes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.builders import REP, REP2
from tests.support.ews_server import EwsServer, make_server


@pytest.fixture
def ews_server() -> Iterator[EwsServer]:
    server = make_server({REP, REP2})
    server.start()
    try:
        yield server
    finally:
        server.stop()

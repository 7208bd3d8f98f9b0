"""Fixtures of the EWS tests: the loopback EWS server holding both reps' mailboxes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.ews_server import EwsServer, serve_ews


@pytest.fixture
def ews_server() -> Iterator[EwsServer]:
    yield from serve_ews()

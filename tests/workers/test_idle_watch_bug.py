"""A bug while listing the folders to watch does not end a mailbox's IMAP IDLE watch silently: it is logged,
and the listing is tried again (pure: fakes for the IMAP classes, no server)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from workers import idle_watch
from workers.idle_watch import MailboxWatch, WatchedMailbox, WatchTiming


class _Connector:
    calls = 0

    def __init__(self, url: str, secret: str | None) -> None:
        type(self).calls += 1
        if type(self).calls == 1:
            raise KeyError("a bug in the folder listing")
        self.backoff: tuple[float, ...] = ()

    def folders(self) -> list[str]:
        return ["INBOX"]

    def close(self) -> None:
        pass


class _Watch:
    def __init__(self, url: str, secret: str | None, folder: str) -> None:
        pass

    def open(self) -> bool:
        return False

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        stop.wait(seconds)
        return False

    def close(self) -> None:
        pass

    def rotated_secret(self) -> str | None:
        return None


def test_a_bug_while_listing_the_folders_is_logged_and_the_listing_tried_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_Connector, "calls", 0)
    monkeypatch.setattr(idle_watch, "ImapConnector", _Connector)
    monkeypatch.setattr(idle_watch, "FolderWatch", _Watch)
    changes: list[Any] = []
    watch = MailboxWatch(
        WatchedMailbox(1, "alice", "imap://alice@127.0.0.1:1/", None),
        lambda mailbox_id, folder: changes.append((mailbox_id, folder)),
        lambda mailbox_id, secret: None,
        WatchTiming(reidle=0.5, backoff=(0.05,), permanent_wait=0.05),
    )
    with caplog.at_level(logging.ERROR, logger="workers.watch"):
        watch.start()
        deadline = time.monotonic() + 10
        while watch.ready != {"INBOX"} and time.monotonic() < deadline:
            time.sleep(0.02)
        ready = watch.ready
        watch.stop()
        watch.join(5)
    assert ready == {"INBOX"} and _Connector.calls == 2  # listed again, then watched
    assert "unexpected error watching '(listing the folders)' of alice" in caplog.text

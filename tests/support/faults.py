"""Test helper: make one email fail while its batch is being written."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sync_service.pipeline import emails


def fail_while_writing(monkeypatch: pytest.MonkeyPatch, subject: str) -> Callable[[], None]:
    """The email with this subject raises ``RuntimeError("disk on fire")`` while it is written (after it was
    parsed and matched), which sends its batch item by item. Returns the function that ends the failure."""
    real = emails.email_owner

    def failing(headers, reps, mailbox_owner):  # type: ignore[no-untyped-def]
        if headers.subject == subject:
            raise RuntimeError("disk on fire")
        return real(headers, reps, mailbox_owner)

    monkeypatch.setattr(emails, "email_owner", failing)
    return lambda: monkeypatch.setattr(emails, "email_owner", real)

"""IMAP IDLE (RFC 2177): wait until a folder changes, for near-real-time pickup of mailboxes with ``?idle=1``.

``FolderWatch(url, secret, folder).wait(timeout)`` holds its own connection (never the sync's), EXAMINEs the
folder and IDLEs for at most ``timeout`` seconds (capped at 29 minutes, as the RFC advises). It returns True
when the server announced new or expunged mail (``EXISTS``, ``EXPUNGE``, ``VANISHED``) — the caller then runs
an ordinary incremental sync of the folder, which finds exactly what changed from the stored cursor — and False
on a quiet timeout. Flag changes (``FETCH``) are ignored, like in the sync. A server without IDLE makes
``wait`` raise ``PermanentSourceError`` (poll on the schedule instead); connection trouble raises
``TransientSourceError`` after the connection is dropped, so the next ``wait`` reconnects.
"""

from __future__ import annotations

import re

from sync_service.connectors.imap_config import ImapConfig
from sync_service.connectors.imap_errors import translated
from sync_service.connectors.imap_session import ImapSession
from sync_service.errors import PermanentSourceError, TransientSourceError

MAX_IDLE_SECONDS = 29 * 60
_CHANGE = re.compile(rb"^\* (?:\d+ (?:EXISTS|EXPUNGE)|VANISHED)\b")


class FolderWatch:
    def __init__(self, url: str, secret: str | None, folder: str = "INBOX") -> None:
        self.config = ImapConfig.from_url(url)
        self.folder = folder
        self.session = ImapSession(self.config, secret)

    def wait(self, timeout: float) -> bool:
        """Block until the folder changes (True) or ``timeout`` seconds pass (False)."""
        session = self.session
        try:
            if session.selected != self.folder:
                session.examine(self.folder)
            if "IDLE" not in session.capabilities:
                raise PermanentSourceError(f"IMAP {self.config.where} does not offer IDLE")
            box = session.box
            with translated(self.config, f"waiting for changes in {self.folder!r}"):
                responses = box.idle.wait(timeout=min(max(timeout, 0.1), MAX_IDLE_SECONDS))
        except TransientSourceError:
            session.close()
            raise
        return any(_CHANGE.match(line) for line in responses)

    def close(self) -> None:
        self.session.close()

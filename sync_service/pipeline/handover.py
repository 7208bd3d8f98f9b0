"""Handing a processing run's next batches to its parser processes (``preparse``): which raw items come
next, where their bytes are stored, and the mailbox owner each was synced for."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from crm_store.models import RawItem
from crm_store.models.sync import DELETED
from sync_service.bootstrap import App
from sync_service.matching.model import CandidateIndex
from sync_service.pipeline.follow import FetchProgress
from sync_service.pipeline.pending import pending_items
from sync_service.pipeline.preparse import Key, ParseAhead, Parsed, ParseOptions

log = logging.getLogger(__name__)


def _spool(app: App) -> str | None:
    """Where the parser processes' options file goes: the data directory, which holds the same mail and CRM
    data already, else the system's temporary directory."""
    directory = app.settings.data_dir
    return str(directory) if os.path.isdir(directory) else None


class Handover:
    """The parser processes of one run and how far it has handed its pending items to them."""

    def __init__(
        self,
        app: App,
        ahead: ParseAhead,
        mailbox_id: int | None,
        owners: Mapping[int, tuple[str, int]],
        follow: FetchProgress | None = None,
    ) -> None:
        self.app, self.ahead, self.mailbox_id, self.owners = app, ahead, mailbox_id, owners
        self.follow = follow  # a fetch still storing pages: what is handed over grows with it
        self.handed = 0  # the last raw item id handed over
        self.all_handed = False  # nothing was left to hand over, and nothing more will come

    @classmethod
    def start(
        cls,
        app: App,
        now: datetime,
        processes: int,
        index: CandidateIndex,
        mailbox_id: int | None,
        owners: Mapping[int, tuple[str, int]],
        follow: FetchProgress | None = None,
    ) -> Handover | None:
        """Parser processes for a run (``index``: the run's candidate index, copied to them; ``follow``: the
        fetch the run follows, if any); None when they cannot be started — the run then parses by itself."""
        settings = app.settings
        try:
            options = ParseOptions(
                app.window(now), settings.max_occurrences, settings.max_attachment_bytes, index, settings.auto_create
            )
            return cls(app, ParseAhead(processes, options, spool=_spool(app)), mailbox_id, owners, follow)
        except (OSError, ValueError) as error:  # e.g. no /dev/shm for the pool's locks
            log.warning("cannot start parser processes, parsing in the run itself: %s", error)
            return None

    def next_batch(self, session: Session, after: int) -> tuple[dict[str, bytes], dict[Key, Parsed]]:
        """For the batch the run loaded (its last raw item id ``after``): the bytes handed over for it (none:
        the parser process reads them) and what was parsed of them; then the batches after it are handed
        over, up to the pool's depth."""
        blobs, parsed = self.ahead.take()
        self.handed = max(self.handed, after)
        while not self.all_handed and self.ahead.waiting < self.ahead.depth:
            finished = self.follow is None or self.follow.done  # before the query (``pipeline.follow``)
            last = self._hand_over(session)
            if not last:
                self.all_handed = finished
                break
            self.handed = max(self.handed, last)
        return blobs, parsed

    def _hand_over(self, session: Session) -> int:
        """Hand the batch after ``handed`` over; its last raw item id, or 0 when nothing is left."""
        columns = (RawItem.id, RawItem.kind, RawItem.sha256, RawItem.state, RawItem.mailbox_id)
        limit = self.app.settings.batch_size
        rows = session.execute(pending_items(self.mailbox_id, self.handed, limit, *columns)).all()  # type: ignore[call-overload]
        if not rows:
            return 0
        owners = self.owners
        wanted: list[tuple[str, str, str]] = [
            (kind, sha, owners.get(box, ("", 0))[0]) for _id, kind, sha, state, box in rows if state != DELETED and sha
        ]
        # Where the bytes are, not the bytes: the parser process reads them (and checks them) itself.
        stored = self.app.blobs.locate_many(dict.fromkeys(sha for _kind, sha, _owner in wanted))
        self.ahead.submit([(kind, sha, owner, stored[sha]) for kind, sha, owner in wanted if sha in stored])
        return int(rows[-1][0])

    def close(self) -> None:
        self.ahead.close()

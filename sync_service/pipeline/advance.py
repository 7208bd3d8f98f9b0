"""Seam between the sync pipeline and the sales-process engine (SPEC §2, automatic advancement).

The pipeline calls ``activity_synced`` after it created or updated an activity from a synced item (inside
the item's savepoint). The process engine decides whether an open step of the activity's opportunity (or
lead) is satisfied by it: a completed activity completes the step, a planned one (a future meeting) is linked
to it, a cancelled linked one ends the stage early. Calling it again for the same activity changes nothing.

A process that cannot run (say, an admin's edit broke its definition) must not stop the sync: the error is
logged and the activity stays logged; the process simply does not advance.
"""

from __future__ import annotations

import logging

from crm_store.models import Activity
from sync_service.pipeline.context import ProcessContext
from sync_service.process import service
from sync_service.process.errors import ProcessError

log = logging.getLogger(__name__)


def activity_synced(ctx: ProcessContext, activity: Activity) -> None:
    """Called for every synced activity that was created or changed."""
    try:
        with ctx.session.begin_nested():
            service.activity_synced(ctx.session, activity, ctx.now)
    except ProcessError as error:
        log.warning("process not advanced for activity %s: %s", activity.id, error)

"""Seam between the sync pipeline and the sales-process engine (SPEC §2, automatic advancement).

The pipeline calls ``activity_synced`` after it created or updated an activity from a synced item (inside
the item's savepoint). The process engine decides whether an open step of the activity's opportunity (or
lead) is satisfied by it.
"""

from __future__ import annotations

from crm_store.models import Activity
from sync_service.pipeline.context import ProcessContext


def activity_synced(ctx: ProcessContext, activity: Activity) -> None:
    """Called for every synced activity that was created or changed. Implemented by the process engine."""
    del ctx, activity  # the engine is wired in by issue 5

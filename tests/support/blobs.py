"""Test helper: make a stored blob disappear, whether it is a file or in a pack."""

from __future__ import annotations

from sqlalchemy import delete

from crm_store.db import transaction
from crm_store.models import PackedBlob
from sync_service.bootstrap import App


def lose_blob(app: App, sha256: str) -> None:
    """As if the bytes were lost from ``CRM_DATA_DIR``: the loose file removed, the pack entry forgotten."""
    app.blobs.path_of(sha256).unlink(missing_ok=True)
    with transaction(app.sessions) as session:
        session.execute(delete(PackedBlob).where(PackedBlob.sha256 == sha256))
    assert not app.blobs.exists(sha256)

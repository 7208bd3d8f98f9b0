"""Pack files in a test's blob store: write one as a sync's page does, list them."""

from __future__ import annotations

from pathlib import Path

from crm_store.blobs import PackWriter
from crm_store.db import transaction
from sync_service.bootstrap import App


def pack_files(app: App) -> list[Path]:
    """The store's pack files, in name order (none before the first pack)."""
    folder = app.settings.data_dir / "blobs" / "packs"
    return sorted(p for p in folder.iterdir() if p.suffix == ".pack") if folder.is_dir() else []


def write_pack(app: App, blobs: list[bytes]) -> list[str]:
    """One pack file holding ``blobs``, indexed, as a sync's page writes it; their digests."""
    writer = PackWriter(app.blobs)
    digests = [writer.add(data) for data in blobs]
    with transaction(app.sessions) as session:
        app.blobs.record_packed(session, writer.close())
    return digests

"""Wire the dependencies once, explicitly: settings → engine → sessions → blob store.

Nothing here runs at import time; the CLI and the workers call ``bootstrap()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from crm_store.blobs import BlobStore
from crm_store.db import make_engine, session_factory
from sync_service.config import Settings, load_settings
from sync_service.values import SyncWindow


@dataclass
class App:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore

    def window(self, now: datetime | None = None) -> SyncWindow:
        now = now or datetime.now(UTC)
        return SyncWindow.around(now, self.settings.window_days_back, self.settings.window_days_ahead)

    def close(self) -> None:
        self.engine.dispose()


def bootstrap(settings: Settings | None = None) -> App:
    settings = settings or load_settings()
    engine = make_engine(settings.database_url)
    return App(settings, engine, session_factory(engine), BlobStore(settings.data_dir, engine))

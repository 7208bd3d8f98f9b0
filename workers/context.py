"""What every task gets: the app (database, blobs), the locks, the options, and optional in-process hooks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sync_service.bootstrap import App, bootstrap
from sync_service.config import Settings
from sync_service.pipeline.follow import FetchProgress
from workers.locks import Locks
from workers.options import WorkerOptions


@dataclass(frozen=True)
class Hooks:
    """Callbacks of a foreground run (embedded mode only; a message carries ids, never callables)."""

    on_page: Callable[[int], None] | None = None  # items fetched in a page
    on_progress: Callable[[int, int], None] | None = None  # processed, total
    now: datetime | None = None  # the clock of processing and completion (tests, demo)
    on_outcome: Callable[[str, tuple[object, ...], object], None] | None = None  # actor, args, result or error
    parse_processes: int | None = None  # parser processes of the processing runs (None: the worker options')
    follow: FetchProgress | None = None  # a fetch in another process that the processing runs follow


class WorkerContext:
    """Shared by the actors of one broker. The app is built on first use, so a forked worker process opens
    its own database connections instead of inheriting the parent's."""

    def __init__(
        self,
        settings: Settings,
        locks: Locks,
        options: WorkerOptions,
        app: App | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.settings, self.locks, self.options = settings, locks, options
        self.hooks = hooks or Hooks()
        self._app, self._owns_app = app, app is None
        self._mutex = threading.Lock()

    @property
    def app(self) -> App:
        with self._mutex:
            if self._app is None:
                self._app = bootstrap(self.settings)
            return self._app

    def close(self) -> None:
        with self._mutex:
            if self._app is not None and self._owns_app:
                self._app.close()
                self._app = None

"""Keep the cyclic garbage collector off what a process built at start-up.

A sync allocates millions of short-lived objects, and every so often CPython runs a full collection that walks
every tracked object of the process, including the hundred thousand or so that start-up made (modules,
SQLAlchemy's mappers and caches, the settings, the app) and that live until the process ends.
``gc.freeze()`` moves those out of the collector's reach. On the 20,000-message ingest benchmark (docs/
performance.md) full collections took 2.0 s without it and 0.6 s with it.

Called once, after start-up, by the processes that sync: each dramatiq worker process, and the one-shot
``crm-sync sync`` and ``crm-sync demo``. Never from library code such as ``run_once``, which may run inside
another program (the tests) whose objects it must not pin.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Collect what start-up left as garbage, then exempt everything alive from later collections."""
    gc.collect()
    gc.freeze()

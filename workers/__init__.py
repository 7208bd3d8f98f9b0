"""Background work: dramatiq actors, the broker, locks, the scheduler (see docs/workers.md).

Nothing in this package runs at import time. ``workers.broker.setup_broker`` is the only place that creates a
broker; every other module receives it (or the runtime built around it) as an argument.
"""

QUEUES = ("sync", "process", "maintenance")  # the dramatiq queues (``workers.actors`` declares their actors)

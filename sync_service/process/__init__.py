"""The sales-process engine (SPEC §2): definitions as data, a pure engine, and the store that runs it.

- ``definition``: the YAML / JSON dict of a process → frozen, validated dataclasses.
- ``satisfy``: does a synced activity's facts satisfy a step's ``satisfied_by`` rule (pure).
- ``model``: the engine's values: a subject's state, events, effects (pure).
- ``engine``: state + event → new state + effects (pure; never names a stage).
- ``store``: the only database code: loads a subject's state, applies effects, writes history.
- ``service``: the use cases the CLI and the sync pipeline call; ``views``: read-only summaries.
- ``cancelled_after``: the history note for a synced activity cancelled after it completed a step.
"""

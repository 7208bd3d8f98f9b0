"""Whether an imported value fits its database column.

PostgreSQL refuses a value longer than its ``VARCHAR(n)`` column with a ``DataError`` that names no line, while
SQLite stores it: an over-long cell must reject the file at its line, the same on both backends (SPEC §5,
audit 17a F7). The limits are read from the models, so they follow the schema.

Every over-long value rejects the file, none is cut short: names, titles and companies identify records (a
shortened name would be another account or contact), and the free-text fields (Territory, Job Title) are what an
admin typed — cutting them would lose data without a word, where the file is easily fixed.
"""

from __future__ import annotations

from typing import Any

from crm_store.columns import limit

__all__ = ["fit", "limit"]


def fit(label: str, value: str, column: Any) -> str:
    """``value``, or ``ValueError`` "Name is 412 characters, the longest allowed is 300" when it is too long."""
    longest = limit(column)
    if longest is not None and len(value) > longest:
        raise ValueError(f"{label} is {len(value)} characters, the longest allowed is {longest}")
    return value

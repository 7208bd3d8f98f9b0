"""How long a value a model's text column holds (its ``VARCHAR(n)``): PostgreSQL refuses a longer one with a
``DataError`` where SQLite stores it, so what is written from outside input is checked or cut against this."""

from __future__ import annotations

from typing import Any


def limit(column: Any) -> int | None:
    """The longest value ``column`` (a model attribute such as ``Contact.name``) holds; None when unbounded."""
    length = getattr(column.property.columns[0].type, "length", None)
    return int(length) if length else None

"""A row's list cell as the master list of what the file manages. Pure.

The accounts and opportunities files are master lists that sales ops import again and again (SPEC §5): the
Domains cell is the account's domain list, the Contacts cell the opportunity's participants that imports manage.
What a cell no longer lists is taken away — but only what the file manages (``managed``: a participant the lead's
conversion added is not the file's), and an empty cell is no list at all: like every empty cell it leaves the
stored values alone, so a file without domains or contacts filled in never strips an account or an opportunity.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import TypeVar

T = TypeVar("T")


def dropped(stored: Iterable[T], listed: Collection[T], managed: Callable[[T], bool] = lambda _: True) -> list[T]:
    """The stored entries the cell no longer lists (in stored order); none when the cell is empty."""
    if not listed:
        return []
    return [entry for entry in stored if managed(entry) and entry not in listed]


def released(value: T, listed: Collection[T] | None) -> bool:
    """Whether a row of the same file gives ``value`` up: the row (``listed``; None when the file has no row for
    the record holding ``value``) lists other values and not this one, so another row may claim it."""
    return bool(listed) and value not in (listed or ())

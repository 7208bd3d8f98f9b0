"""Which header cell is which column: exact names, well-known other spellings, and look-alikes (typos).

A header cell is matched to a column case-insensitively (``iter_rows``). Beyond that:

- *aliases* (the contacts file only): other programs' names for a column the importer reads — Google Contacts'
  ``E-mail 1 - Value``, a spreadsheet's ``Email`` or ``Email Address`` — are read as that column when the file
  has no column of the exact name. Cells are compared in a normalised form (``normalised``), so ``E-mail``,
  ``Email``, ``e-mail address`` are one spelling.
- *look-alikes* (the fixed-format files: accounts, leads, opportunities): a header cell that is not a column but
  resembles one the header lacks — the same name up to case, spaces, hyphens, a plural ``s`` or a trailing
  ``Address`` / ``Name`` / ``Number`` word (``Domain`` for ``Domains``, ``Contact`` for ``Contacts``,
  ``Email Address`` for ``Email``), or a near spelling (``Teritory``; for a short name, where one wrong letter
  weighs too much for the similarity ratio, one slip: ``Nmae``, ``Tpye``) — rejects the file: its
  data would be lost without a word. Any other unknown column is ignored, and the import's summary names it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence

_WORDS = re.compile(r"[0-9a-z]+")
# A last word that only says what kind of value the column holds: "Email Address", "Account Name", "Phone Number",
# Google's "E-mail 1 - Value".
_FILLER = frozenset({"address", "addresses", "name", "names", "number", "numbers", "no", "nr", "value", "values"})
SIMILARITY = 0.8  # difflib ratio from which an unknown cell is taken for a misspelt column
# One slip (``one_slip``) in a name of fewer letters than this is too much of it: "Id" is not "Ip".
SLIP_MIN_LENGTH = 4


def normalised(cell: str) -> str:
    """``cell`` reduced for comparison: lower case, letters and digits only, without a trailing filler word or
    plural ``s`` (``E-mail Address`` → ``email``, ``Domains`` → ``domain``, ``Close_Date`` → ``closedate``)."""
    words = _WORDS.findall(cell.casefold())
    if len(words) > 1 and words[-1] in _FILLER:
        words = words[:-1]
    joined = "".join(words)
    if len(joined) > 3 and joined.endswith("s") and not joined.endswith("ss"):
        joined = joined[:-1]
    return joined


def take_aliases(
    unknown: list[tuple[int, str]], positions: dict[str, int], aliases: Mapping[str, Sequence[str]]
) -> list[tuple[int, str]]:
    """Read each unknown ``(position, cell)`` that is another spelling of a column the header lacks as that
    column (into ``positions``; the first such cell when there are several). Returns the cells still unknown."""
    by_spelling = {normalised(spelling): column for column, spellings in aliases.items() for spelling in spellings}
    left = []
    for index, cell in unknown:
        column = by_spelling.get(normalised(cell))
        if column is not None and column not in positions:
            positions[column] = index
        else:
            left.append((index, cell))
    return left


def lookalike(cells: Sequence[str], absent: Sequence[str]) -> tuple[str, str] | None:
    """The first of the unknown ``cells`` that resembles one of the ``absent`` columns, with that column."""
    by_key = {normalised(name): name for name in absent}
    for cell in cells:
        key = normalised(cell)
        meant = by_key.get(key)
        if meant is None:
            close = difflib.get_close_matches(key, list(by_key), n=1, cutoff=SIMILARITY)
            meant = by_key[close[0]] if close else None
        if meant is None:
            meant = next((name for k, name in by_key.items() if len(k) >= SLIP_MIN_LENGTH and one_slip(key, k)), None)
        if meant is not None:
            return cell, meant
    return None


def one_slip(typed: str, meant: str) -> bool:
    """Whether ``typed`` is ``meant`` with at most one slip: a letter left out, added or wrong, or two neighbours
    swapped (Damerau–Levenshtein distance ≤ 1). The similarity ratio misses these in short names: ``nmae`` and
    ``name`` share only 3 of 4 letters in order (ratio 0.75), yet the swap is the commonest typo."""
    if abs(len(typed) - len(meant)) > 1:
        return False
    same = 0
    while same < min(len(typed), len(meant)) and typed[same] == meant[same]:
        same += 1
    rest, wanted = typed[same:], meant[same:]  # from the first difference on
    return (
        rest[1:] == wanted[1:]  # one letter wrong (or none)
        or rest[1:] == wanted  # one letter added
        or rest == wanted[1:]  # one letter left out
        or (rest[:2] == wanted[1::-1] and rest[2:] == wanted[2:])  # two neighbours swapped
    )

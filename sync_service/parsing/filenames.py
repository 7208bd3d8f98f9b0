"""Make attachment file names from a message safe to show and to store as metadata.

Names in mail are untrusted (SPEC §6): senders write ``../../etc/passwd``, Windows paths, NUL bytes, bidi
overrides that disguise ``.exe`` files, and names hundreds of characters long. Files are stored under their
content hash, so the name is only ever a label — but it must still be harmless wherever it is shown or saved.
"""

from __future__ import annotations

import re
import unicodedata

# Longest suffix still treated as an extension when a long name is shortened ("tar.gz" style suffixes are
# kept only for their last part, which is what tells the user the file type).
_MAX_EXTENSION = 16
_PATH_SEPARATORS = re.compile(r"[/\\]")
# Cc: control characters (NUL, ESC…); Cf: invisible format characters such as U+202E RIGHT-TO-LEFT
# OVERRIDE, used to make "evil\u202egpj.exe" look like "evilexe.jpg"; Cs: lone surrogates from broken
# decoding, which cannot even be encoded as UTF-8; Co/Cn: private-use and unassigned code points.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def safe_filename(name: str | None, *, default: str = "attachment", max_length: int = 150) -> str:
    """Return the base name of ``name`` with control characters removed and its length capped.

    Never returns an empty string, ``.`` or ``..``: those become ``default``.
    """
    if not name:
        return default
    base = _PATH_SEPARATORS.split(name)[-1]
    if not (base.isascii() and base.isprintable()):  # printable ASCII: nothing to normalise or drop
        base = unicodedata.normalize("NFC", base)
        base = "".join(" " if ch.isspace() else ch for ch in base if not _is_dropped(ch))
    base = " ".join(base.split()).strip(" .")
    if not base:
        return default
    return _cap_length(base, max(1, max_length))


def _is_dropped(ch: str) -> bool:
    # Whitespace controls (tab, newline) are collapsed to a space rather than removed, so "a\tb" stays
    # two words; every other control or invisible character is removed.
    return not ch.isspace() and unicodedata.category(ch) in _DROPPED_CATEGORIES


def _cap_length(base: str, max_length: int) -> str:
    if len(base) <= max_length:
        return base
    stem, dot, ext = base.rpartition(".")
    if dot and stem and 0 < len(ext) <= _MAX_EXTENSION and len(ext) + 2 <= max_length:
        kept = stem[: max_length - len(ext) - 1].rstrip(" .")
        if kept:
            return f"{kept}.{ext}"
    return base[:max_length].rstrip(" .") or base[:max_length]

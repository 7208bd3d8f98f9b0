"""Text from mail, calendars and imports, made harmless for a terminal (audit 17a, F8).

A subject, a meeting's summary or a contact's name is written by strangers. Printed as it is, an ESC sequence in
it recolours or clears an admin's terminal, or sets its title (OSC ``ESC ] 0; … BEL``), and a bidi override
(U+202E) makes ``invoice<U+202E>fdp.exe`` read as ``invoiceexe.pdf``. Rich removes only BEL, BS, VT, FF and CR
from printed text, so the CLI prints through ``SafeConsole``, which removes every other C0 control but tab and
newline, DEL, the C1 controls and the bidi embedding / override / isolate controls from each string it renders
(the values stay as they are in the database and in JSON, which escapes them). Rich's own styling is not text:
it is not touched.
"""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console
from rich.text import Text

# C0 but tab and newline, DEL, C1; LRE RLE PDF LRO RLO (U+202A–E), LRI RLI FSI PDI (U+2066–9).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` without the characters that act on a terminal or reorder what it shows."""
    return _UNSAFE.sub("", text)


class SafeConsole(Console):
    """A rich ``Console`` that renders every string through ``terminal_safe`` (plain, markup and table cells:
    rich turns each into ``Text`` by ``render_str``)."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(terminal_safe(text), **kwargs)

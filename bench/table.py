"""The plain-text tables the benchmarks print."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def cell(value: float | None, fmt: str) -> str:
    """A figure formatted for a table, or "–" when there is none."""
    return "–" if value is None else format(value, fmt)


def aligned(header: Sequence[str], rows: Sequence[Sequence[str]], left: Collection[int]) -> str:
    """Columns padded to their widest cell (those in ``left`` flush left, the figures right), a rule under
    the header."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for cells in [header, *rows]:
        padded = (c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        out.append("  ".join(padded))
        if cells is header:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in out)

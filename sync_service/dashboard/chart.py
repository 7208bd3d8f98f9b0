"""A small bar chart of items synced per day, laid out server-side as SVG geometry (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 160, 40, 22, 10


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    count: int
    label: str  # shown under every few bars ("" elsewhere)


@dataclass(frozen=True)
class Chart:
    bars: tuple[Bar, ...]
    peak: int
    total: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    baseline: int = HEIGHT - BOTTOM
    top: int = TOP


def days_back(counts: Mapping[date, int], today: date, days: int) -> list[tuple[date, int]]:
    """The ``days`` days up to ``today`` with their counts, 0 for the days without any."""
    first = today - timedelta(days=days - 1)
    return [(first + timedelta(days=i), counts.get(first + timedelta(days=i), 0)) for i in range(days)]


def bar_chart(points: list[tuple[date, int]]) -> Chart:
    """Bars scaled to the busiest day; a label under the first bar, every 7th, and the last."""
    peak = max((n for _, n in points), default=0)
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(1, len(points))
    bars = []
    for i, (day, count) in enumerate(points):
        h = (count / peak) * plot_h if peak else 0.0
        show = i % 7 == 0 or i == len(points) - 1
        bars.append(
            Bar(
                x=round(LEFT + i * slot + slot * 0.15, 1),
                y=round(HEIGHT - BOTTOM - h, 1),
                width=round(slot * 0.7, 1),
                height=round(h, 1),
                day=day,
                count=count,
                label=day.strftime("%d %b") if show else "",
            )
        )
    return Chart(tuple(bars), peak, sum(n for _, n in points))

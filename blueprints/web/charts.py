"""Bar charts drawn on the server as inline SVG: no chart library to vendor and no script to run.

Only the geometry is computed here; templates/_charts.html draws it, coloured from the stylesheet
(the CSP allows no inline styles) so the bars follow the light or dark theme.
"""
from dataclasses import dataclass

WIDTH, HEIGHT = 720, 160          # the viewBox; the SVG scales to its container
GAP = 0.2                         # of each slot left empty between bars


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str                    # what a screen reader or a hover tells: "2026-11-30: 12 requests"


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: tuple
    top: str                      # the value at the top of the scale, as shown
    first: str                    # the first and last labels under the axis
    last: str
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def empty(self):
        return all(bar.height == 0 for bar in self.bars)


def bar_chart(title, points, show):
    """A chart of `points` [(label, value)], each value written with `show(value)` in its bar's title."""
    top = max((value for _, value in points), default=0)
    slot = WIDTH / max(len(points), 1)
    bars = tuple(Bar(x=round(i * slot + slot * GAP / 2, 2), y=round(HEIGHT - _height(value, top), 2),
                     width=round(slot * (1 - GAP), 2), height=round(_height(value, top), 2),
                     title=f"{label}: {show(value)}")
                 for i, (label, value) in enumerate(points))
    return BarChart(title, bars, show(top), points[0][0] if points else "", points[-1][0] if points else "")


def _height(value, top):
    """A value's bar height; a non-zero value stays visible (1 unit) beside a much larger one."""
    if not top or not value:
        return 0.0
    return max(HEIGHT * value / top, 1.0)

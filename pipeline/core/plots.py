"""Figures as SVG, written atomically: a chart of points and lines, and a heat map.

Drawn as markup here rather than with matplotlib, whose import and first drawing cost each job
process about 0.5 s and each sweep's end about 1 s (docs/BENCHMARKS.md, issue 32) for four kinds
of figure. Browsers and the MLflow UI's artifact view show SVG as an image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from pipeline.core.files import atomic_write_text

# matplotlib's tab10: the colours users of the earlier PNG figures know.
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
GREY = "#c8c8c8"
FONT = "font-family='DejaVu Sans, Arial, sans-serif'"
WIDTH, PLOT_HEIGHT = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 72, 24, 40, 52
LEGEND_LINE = 18


@dataclass
class Series:
    """Points of one colour: joined by a line (`line`), and each named beside it (`notes`)."""

    label: str | None
    points: list[tuple[float, float]]
    line: bool = False
    color: str | None = None
    notes: list[str] = field(default_factory=list)


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round values (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    low, high = min(low, high), max(low, high)
    if high == low:  # one value: a range around it
        low, high = low - max(abs(low) * 0.1, 1e-9), high + max(abs(high) * 0.1, 1e-9)
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))
    # Counted in whole steps: 0.3 / 0.1 is 2.9999999999999996 in floating point.
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(n * step, 10) for n in range(first, last + 1)]


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e5 else f"{value:.2g}"


class _Axis:
    """Maps data values to pixels, linearly or in powers of two (`log2`)."""

    def __init__(self, values: Sequence[float], start: float, end: float, log2: bool = False) -> None:
        self.log2 = log2 and all(v > 0 for v in values)
        if self.log2:
            low, high = math.floor(math.log2(min(values))), math.ceil(math.log2(max(values)))
            self.ticks = [2.0**p for p in range(low, max(high, low + 1) + 1)]
        else:
            self.ticks = nice_ticks(min(values), max(values))
        self.low, self.high = self._scaled(self.ticks[0]), self._scaled(self.ticks[-1])
        self.start, self.end = start, end

    def _scaled(self, value: float) -> float:
        return math.log2(value) if self.log2 else value

    def __call__(self, value: float) -> float:
        share = (self._scaled(value) - self.low) / ((self.high - self.low) or 1.0)
        return self.start + share * (self.end - self.start)


def _text(x: float, y: float, text: str, size: int = 11, anchor: str = "middle", extra: str = "") -> str:
    return (
        f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' {FONT}{extra}>"
        f"{escape(text)}</text>"
    )


def chart(
    path: Path,
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    log2_x: bool = False,
) -> None:
    """Writes `series` on shared axes, a legend of the labelled ones below the plot."""
    points = [point for one in series for point in one.points]
    if not points:
        raise ValueError(f"{path.name}: nothing to draw")
    height = PLOT_HEIGHT + LEGEND_LINE * sum(1 for one in series if one.label)
    x = _Axis([p[0] for p in points], LEFT, WIDTH - RIGHT, log2=log2_x)
    y = _Axis([p[1] for p in points], PLOT_HEIGHT - BOTTOM, TOP)
    parts = [
        _text(WIDTH / 2, 24, title, size=14),
        f"<rect x='{LEFT}' y='{TOP}' width='{WIDTH - LEFT - RIGHT}' height='{PLOT_HEIGHT - TOP - BOTTOM}' "
        "fill='none' stroke='black'/>",
    ]
    for tick in x.ticks:
        px = x(tick)
        parts.append(
            f"<line x1='{px:.1f}' y1='{PLOT_HEIGHT - BOTTOM}' x2='{px:.1f}' y2='{TOP}' stroke='#eee'/>"
        )
        parts.append(_text(px, PLOT_HEIGHT - BOTTOM + 16, _label(tick)))
    for tick in y.ticks:
        py = y(tick)
        parts.append(f"<line x1='{LEFT}' y1='{py:.1f}' x2='{WIDTH - RIGHT}' y2='{py:.1f}' stroke='#eee'/>")
        parts.append(_text(LEFT - 6, py + 4, _label(tick), anchor="end"))
    parts.append(_text((LEFT + WIDTH - RIGHT) / 2, PLOT_HEIGHT - 14, x_label, size=12))
    middle = (TOP + PLOT_HEIGHT - BOTTOM) / 2
    parts.append(_text(18, middle, y_label, size=12, extra=f" transform='rotate(-90 18 {middle:.1f})'"))
    painted = [(one, one.color or COLORS[index % len(COLORS)]) for index, one in enumerate(series)]
    for one, color in painted:
        pixels = [(x(a), y(b)) for a, b in one.points]
        if one.line and len(pixels) > 1:
            joined = " ".join(f"{a:.1f},{b:.1f}" for a, b in pixels)
            parts.append(f"<polyline points='{joined}' fill='none' stroke='{color}' stroke-width='1.5'/>")
        parts += [f"<circle cx='{a:.1f}' cy='{b:.1f}' r='4' fill='{color}'/>" for a, b in pixels]
        for (a, b), note in zip(pixels, one.notes, strict=False):
            parts.append(_text(a + 6, b - 6, note, size=9, anchor="start"))
    for row, (one, color) in enumerate((one, color) for one, color in painted if one.label):
        top = PLOT_HEIGHT + LEGEND_LINE * row
        parts.append(f"<circle cx='{LEFT + 6}' cy='{top + 4}' r='4' fill='{color}'/>")
        parts.append(_text(LEFT + 16, top + 8, str(one.label), anchor="start"))
    _write_svg(path, WIDTH, height, parts)


def heatmap(
    path: Path, counts: Sequence[Sequence[int]], labels: Sequence[str], *, x_label: str, y_label: str
) -> None:
    """Writes a square table of counts (rows: y, columns: x), each cell as blue as its share of the
    largest count, with its count in it."""
    cell = 60
    margin = 24 + 7 * max((len(label) for label in labels), default=1)
    width, height = margin + cell * len(labels) + 16, 16 + cell * len(labels) + margin + 20
    largest = max((max(row, default=0) for row in counts), default=0) or 1
    parts: list[str] = []
    for row, values in enumerate(counts):
        for col, count in enumerate(values):
            share = count / largest
            # From Blues' lightest (247, 251, 255) to its darkest (8, 48, 107).
            fill = "#" + "".join(
                f"{round(a + (b - a) * share):02x}" for a, b in ((247, 8), (251, 48), (255, 107))
            )
            left, top = margin + col * cell, 16 + row * cell
            parts.append(
                f"<rect x='{left}' y='{top}' width='{cell}' height='{cell}' fill='{fill}' stroke='white'/>"
            )
            ink = " fill='white'" if share > 0.5 else ""
            parts.append(_text(left + cell / 2, top + cell / 2 + 4, str(count), size=12, extra=ink))
    bottom = 16 + cell * len(labels)
    for index, label in enumerate(labels):
        center = margin + index * cell + cell / 2
        parts.append(
            _text(
                center,
                bottom + 14,
                label,
                anchor="end",
                extra=f" transform='rotate(-45 {center} {bottom + 14})'",
            )
        )
        parts.append(_text(margin - 6, 16 + index * cell + cell / 2 + 4, label, anchor="end"))
    parts.append(_text(margin + cell * len(labels) / 2, height - 6, x_label, size=12))
    parts.append(
        _text(14, bottom / 2, y_label, size=12, extra=f" transform='rotate(-90 14 {bottom / 2:.1f})'")
    )
    _write_svg(path, width, height, parts)


def _write_svg(path: Path, width: float, height: float, parts: list[str]) -> None:
    """The figure's elements on a white page of `width` x `height` pixels, written atomically."""
    page = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}'>",
        f"<rect width='{width}' height='{height}' fill='white'/>",
    ]
    atomic_write_text(path, "\n".join([*page, *parts, "</svg>"]) + "\n")

"""Line charts (metric curves, drift and performance over time) and bar charts."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence

from conveyor.ui.svg._common import NEUTRAL, SERIES, number, open_svg, text

LEFT, RIGHT, TOP, BOTTOM = 48, 10, 10, 34


def _finite(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]


def _stamp(value: float) -> str:
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%m-%d %H:%M")


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    width: int = 460,
    height: int = 200,
    label: str = "chart",
    x_time: bool = False,
    threshold: float | None = None,
    max_series: int = len(SERIES),
) -> str:
    """One polyline per series on shared axes, with a legend.

    Args:
        series: Name -> points ``(x, y)``; non-finite points are skipped.
        width: Pixels.
        height: Pixels, legend included.
        label: Accessible name.
        x_time: The x values are epoch seconds (labelled as UTC dates).
        threshold: Draw a dashed horizontal line at this y (e.g. a drift threshold).
        max_series: Series beyond this many are left out (named in the legend).
    """
    clean = {name: _finite(points) for name, points in series.items()}
    clean = {name: points for name, points in clean.items() if points}
    if not clean:
        return ""
    shown = dict(list(clean.items())[:max_series])
    xs = [x for points in shown.values() for x, _ in points]
    ys = [y for points in shown.values() for _, y in points]
    if threshold is not None:
        ys.append(threshold)
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        pad = abs(y0) * 0.1 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    legend_rows = math.ceil(len(shown) / 3)
    plot_h = height - TOP - BOTTOM - legend_rows * 14
    plot_w = width - LEFT - RIGHT

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return TOP + (1 - (y - y0) / (y1 - y0)) * plot_h

    parts = [open_svg(width, height, label, "chart")]
    parts.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        f'stroke="#dee2e6"/>'
    )
    for value in (y0, (y0 + y1) / 2, y1):
        parts.append(
            f'<text x="{LEFT - 4}" y="{py(value) + 3:.1f}" font-size="10" fill="{NEUTRAL}" '
            f'text-anchor="end">{number(value)}</text>'
        )
    fmt = _stamp if x_time else number
    for value, anchor in ((x0, "start"), ((x0 + x1) / 2, "middle"), (x1, "end")):
        parts.append(
            f'<text x="{px(value):.1f}" y="{TOP + plot_h + 12}" font-size="10" '
            f'fill="{NEUTRAL}" text-anchor="{anchor}">{text(fmt(value))}</text>'
        )
    if threshold is not None:
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{py(threshold):.1f}" '
            f'y2="{py(threshold):.1f}" stroke="#e03131" stroke-dasharray="4 3"/>'
        )
    for i, (name, points) in enumerate(shown.items()):
        stroke = SERIES[i % len(SERIES)]
        ordered = sorted(points)
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in ordered)
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{stroke}" stroke-width="1.6">'
            f"<title>{text(name)}</title></polyline>"
        )
        if len(ordered) <= 40:
            for x, y in ordered:
                parts.append(
                    f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.2" fill="{stroke}">'
                    f"<title>{text(name)}: {number(y)} at {text(fmt(x))}</title></circle>"
                )
        lx = LEFT + (i % 3) * (plot_w / 3)
        ly = TOP + plot_h + 26 + (i // 3) * 14
        parts.append(
            f'<rect x="{lx:.1f}" y="{ly - 8}" width="10" height="3" fill="{stroke}"/>'
            f'<text x="{lx + 14:.1f}" y="{ly - 4}" font-size="10">{text(name, 24)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    values: Sequence[tuple[str, float]],
    *,
    width: int = 460,
    bar_height: int = 16,
    label: str = "bars",
    percent: bool = False,
    max_bars: int = 40,
) -> str:
    """Horizontal bars, one per (label, value), largest scale first as given.

    Args:
        values: Labels and non-negative values, in display order.
        width: Pixels.
        bar_height: Pixels per bar.
        label: Accessible name.
        percent: Format values as percentages.
        max_bars: Bars beyond this many are left out.
    """
    rows = [(name, v) for name, v in values[:max_bars] if math.isfinite(v)]
    if not rows:
        return ""
    top = max(*(v for _, v in rows), 1e-12)
    label_w = 140
    plot_w = width - label_w - 60
    height = len(rows) * bar_height + 4
    parts = [open_svg(width, height, label, "chart bars")]
    for i, (name, value) in enumerate(rows):
        y = 2 + i * bar_height
        w = max(plot_w * max(value, 0.0) / top, 0.5)
        shown = f"{value:.1%}" if percent else number(value)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + bar_height - 5}" font-size="11" '
            f'text-anchor="end">{text(name, 22)}</text>'
            f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{bar_height - 4}" '
            f'fill="{SERIES[0]}"><title>{text(name)}: {shown}</title></rect>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + bar_height - 5}" font-size="10" '
            f'fill="{NEUTRAL}">{shown}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def histogram(
    edges: Sequence[float],
    counts: Sequence[float],
    *,
    width: int = 300,
    height: int = 110,
    label: str = "histogram",
) -> str:
    """Vertical bars over bins (``len(edges) == len(counts) + 1``), range labelled below."""
    if not counts or len(edges) != len(counts) + 1:
        return ""
    top = max(*counts, 1e-12)
    plot_h = height - 16
    slot = (width - 4) / len(counts)
    parts = [open_svg(width, height, label, "chart histogram")]
    for i, value in enumerate(counts):
        h = plot_h * max(value, 0) / top
        parts.append(
            f'<rect x="{2 + i * slot:.1f}" y="{plot_h - h:.1f}" width="{max(slot - 1, 0.5):.1f}" '
            f'height="{h:.1f}" fill="{SERIES[0]}"><title>{number(edges[i])} .. '
            f"{number(edges[i + 1])}: {number(value)}</title></rect>"
        )
    parts.append(
        f'<line x1="0" y1="{plot_h}" x2="{width}" y2="{plot_h}" stroke="{NEUTRAL}"/>'
        f'<text x="2" y="{height - 3}" font-size="10" fill="{NEUTRAL}">{number(edges[0])}</text>'
        f'<text x="{width - 2}" y="{height - 3}" font-size="10" fill="{NEUTRAL}" '
        f'text-anchor="end">{number(edges[-1])}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)

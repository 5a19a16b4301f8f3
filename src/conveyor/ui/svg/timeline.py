"""Timelines: steps as bars on a shared time axis, packed into lanes.

A run of thousands of steps does not fit a graph drawing; it fits a timeline, where each
step is a bar from its start to its end and bars that do not overlap share a lane (greedy
interval packing, so the lane count equals the run's peak concurrency). The same drawing,
short, is the timing strip above a run's DAG.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from conveyor.ui.svg._common import NEUTRAL, colour, number, open_svg, text

WIDTH = 960
AXIS = 16
MAX_LANES = 200


@dataclass(frozen=True)
class TimelineBar:
    """One step on a timeline: seconds since the run started, and how it ended."""

    label: str
    start: float
    end: float
    status: str | None = None
    cached: bool = False
    href: str | None = None


def pack(bars: Sequence[TimelineBar]) -> list[int]:
    """The lane of each bar: the first lane free at its start (bars sorted by start)."""
    order = sorted(range(len(bars)), key=lambda i: (bars[i].start, bars[i].end))
    lanes: list[int] = [0] * len(bars)
    free: list[tuple[float, int]] = []  # (end time, lane) of the lanes in use
    spare: list[int] = []
    count = 0
    for i in order:
        bar = bars[i]
        while free and free[0][0] <= bar.start:
            heapq.heappush(spare, heapq.heappop(free)[1])
        if spare:
            lane = heapq.heappop(spare)
        else:
            lane, count = count, count + 1
        lanes[i] = lane
        heapq.heappush(free, (max(bar.end, bar.start), lane))
    return lanes


def timeline(
    bars: Sequence[TimelineBar],
    *,
    lane_height: float = 12,
    label: str = "timeline",
    links: bool = True,
) -> str:
    """The SVG timeline of `bars`; lanes beyond MAX_LANES share the last lane.

    Args:
        bars: The steps; `start`/`end` in seconds from the run's start.
        lane_height: Height of one lane in pixels.
        label: Accessible name of the drawing.
        links: Wrap bars that have an `href` in a link.
    """
    if not bars:
        return ""
    lanes = [min(lane, MAX_LANES - 1) for lane in pack(bars)]
    total = max(max(b.end, b.start) for b in bars) or 1.0
    scale = (WIDTH - 2) / total
    count = max(lanes) + 1
    height = count * lane_height + AXIS
    parts = [open_svg(WIDTH, height, label, "timeline")]
    for bar, lane in zip(bars, lanes, strict=True):
        x = 1 + bar.start * scale
        w = max((bar.end - bar.start) * scale, 1.5)
        y = lane * lane_height + 1
        fill = colour("cached" if bar.cached else bar.status)
        rect = (
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{lane_height - 2:.1f}" '
            f'fill="{fill}"><title>{text(bar.label)}: {bar.end - bar.start:.3g} s'
            f"{' (cached)' if bar.cached else ''}, {text(bar.status or '')}</title></rect>"
        )
        if links and bar.href:
            rect = f'<a href="{text(bar.href)}">{rect}</a>'
        parts.append(rect)
    base = count * lane_height
    parts.append(f'<line x1="0" y1="{base}" x2="{WIDTH}" y2="{base}" stroke="{NEUTRAL}"/>')
    for i in range(5):
        at = total * i / 4
        anchor = "start" if i == 0 else ("end" if i == 4 else "middle")
        parts.append(
            f'<text x="{1 + at * scale:.1f}" y="{base + 12}" font-size="10" fill="{NEUTRAL}" '
            f'text-anchor="{anchor}">{number(at)} s</text>'
        )
    parts.append("</svg>")
    return "".join(parts)

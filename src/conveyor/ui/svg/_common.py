"""Colours and small helpers shared by the SVG drawings."""

from __future__ import annotations

from html import escape

# One colour per status, the same in the DAG, the timeline and the CSS badges.
STATUS_COLOURS = {
    "completed": "#2f9e44",
    "cached": "#74b816",
    "failed": "#e03131",
    "running": "#1c7ed6",
    "pending": "#adb5bd",
    "skipped": "#ced4da",
    "interrupted": "#f08c00",
}
NEUTRAL = "#868e96"
SERIES = ("#1c7ed6", "#e8590c", "#2f9e44", "#ae3ec9", "#f59f00", "#0ca678", "#d6336c", "#495057")


def colour(status: str | None) -> str:
    """The fill of a status (grey for unknown ones)."""
    return STATUS_COLOURS.get(status or "", NEUTRAL)


def text(value: object, limit: int | None = None) -> str:
    """Escaped text for an SVG element, shortened to `limit` characters with an ellipsis."""
    raw = str(value)
    if limit is not None and len(raw) > limit:
        raw = raw[: max(limit - 1, 1)] + "\u2026"
    return escape(raw, quote=True)


def number(value: float) -> str:
    """A short human label of a value on an axis."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e5 or magnitude < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4g}"


def open_svg(width: float, height: float, label: str, css_class: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" role="img" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'aria-label="{text(label)}">'
    )

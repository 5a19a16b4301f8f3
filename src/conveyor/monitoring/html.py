"""Self-contained HTML for monitor reports: inline CSS and SVG, no scripts, no network."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

_REF = "#e08a2e"
_CUR = "#3b6fb6"
_W, _H = 340, 120


def _stamp(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def bar_chart(chart: Mapping[str, Any]) -> str:
    """Grouped bars (reference, current) on shared bins, as an SVG string."""
    ref: Sequence[float] = chart.get("reference", [])
    cur: Sequence[float] = chart.get("current", [])
    if not ref or len(ref) != len(cur):
        return ""
    if chart.get("type") == "categorical":
        labels = [str(c) for c in chart.get("categories", [])]
    else:
        edges = chart.get("edges", [])
        labels = [f"{edges[i]:.4g} .. {edges[i + 1]:.4g}" for i in range(len(ref))]
    top = max(*ref, *cur, 1e-12)
    n = len(ref)
    slot = (_W - 10) / n
    bar = max(slot / 2 - 1, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H + 16}" '
        f'role="img" viewBox="0 0 {_W} {_H + 16}">'
    ]
    for i in range(n):
        x = 5 + i * slot
        title = escape(labels[i] if i < len(labels) else str(i))
        for j, (value, color) in enumerate(((ref[i], _REF), (cur[i], _CUR))):
            height = _H * value / top
            parts.append(
                f'<rect x="{x + j * bar:.1f}" y="{_H - height:.1f}" width="{bar:.1f}" '
                f'height="{height:.1f}" fill="{color}"><title>{title}: '
                f"{'reference' if j == 0 else 'current'} {value:.2%}</title></rect>"
            )
    parts.append(f'<line x1="0" y1="{_H}" x2="{_W}" y2="{_H}" stroke="#999"/>')
    if chart.get("type") == "categorical" and n <= 8:
        for i, label in enumerate(labels):
            parts.append(
                f'<text x="{5 + i * slot + slot / 2:.1f}" y="{_H + 12}" font-size="9" '
                f'text-anchor="middle">{escape(label[:12])}</text>'
            )
    elif labels:
        parts.append(f'<text x="2" y="{_H + 12}" font-size="9">{escape(labels[0])}</text>')
        parts.append(
            f'<text x="{_W - 2}" y="{_H + 12}" font-size="9" text-anchor="end">'
            f"{escape(labels[-1])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def render_report(report: Mapping[str, Any]) -> str:
    """The HTML page of a report dict (`MonitorReport.to_dict()`)."""
    from jinja2 import Environment, PackageLoader, select_autoescape
    from markupsafe import Markup

    env = Environment(
        loader=PackageLoader("conveyor", "templates"), autoescape=select_autoescape(["html"])
    )
    template = env.get_template("monitoring/report.html")
    features = []
    for feature in report["drift"]["features"]:
        features.append({**feature, "svg": Markup(bar_chart(feature.get("chart", {})))})
    features.sort(key=lambda f: (not f["drifted"], -(f["score"] or 0.0)))
    prediction = report.get("prediction")
    if prediction is not None:
        prediction = {**prediction, "svg": Markup(bar_chart(prediction.get("chart", {})))}
    return template.render(
        r=report,
        start=_stamp(report["window"]["start"]),
        end=_stamp(report["window"]["end"]),
        features=features,
        prediction=prediction,
        ref_color=_REF,
        cur_color=_CUR,
    )


def render_index(reports: Sequence[Mapping[str, Any]], title: str) -> str:
    """A page listing many reports (newest first) with their drift share and metrics."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("conveyor", "templates"), autoescape=select_autoescape(["html"])
    )
    template = env.get_template("monitoring/index.html")
    rows = [{**r, "start": _stamp(r["window"]["start"])} for r in reports]
    return template.render(rows=rows, title=title)

"""Rendering of profiles and validation reports: Rich tables and a self-contained HTML page.

Charts are inline SVG computed here, so the page needs no network and no JavaScript.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

    from conveyor.data.profile import ColumnProfile, Profile
    from conveyor.data.validate import ValidationReport

_WIDTH = 320
_HEIGHT = 90


def format_value(column: ColumnProfile, value: float | None) -> str:
    if value is None:
        return "-"
    if column.family == "datetime":
        return dt.datetime.fromtimestamp(value, dt.UTC).isoformat(timespec="seconds")
    return f"{value:.6g}"


def profile_table(profile: Profile) -> Table:
    """A Rich table with one row of statistics per column."""
    from rich.table import Table

    table = Table(
        title=f"Profile: {profile.row_count} rows, {len(profile)} columns", title_justify="left"
    )
    for name in ("column", "kind", "dtype", "nulls", "min", "p50", "max", "mean", "std", "top"):
        table.add_column(name, justify="right" if name in ("nulls",) else "left")
    for column in profile:
        median = "-"
        if column.family in ("numeric", "datetime") and column.finite_count:
            median = format_value(column, column.quantile(0.5))
        top = ", ".join(f"{k} ({v})" for k, v in column.top_k(3))
        table.add_row(
            column.name,
            column.kind,
            column.dtype,
            f"{column.null_count} ({column.null_fraction:.1%})",
            format_value(column, column.min),
            median,
            format_value(column, column.max),
            format_value(column, column.mean) if column.family == "numeric" else "-",
            format_value(column, column.std) if column.family == "numeric" else "-",
            top or "-",
        )
    return table


def _bars(series: list[tuple[str, list[float]]], labels: list[str]) -> str:
    """Grouped bar chart as inline SVG; series values are fractions."""
    if not labels:
        return ""
    peak = max((max(values) for _, values in series if values), default=0.0) or 1.0
    group = _WIDTH / len(labels)
    width = group / (len(series) + 0.5)
    colors = ["#3b6fb6", "#e08a2e"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT + 14}" '
        f'role="img">'
    ]
    for s, (name, values) in enumerate(series):
        for i, value in enumerate(values):
            h = _HEIGHT * value / peak
            x = i * group + s * width
            title = html.escape(f"{name} {labels[i]}: {value:.2%}")
            parts.append(
                f'<rect x="{x:.1f}" y="{_HEIGHT - h:.1f}" width="{max(width - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{colors[s % 2]}"><title>{title}</title></rect>'
            )
    parts.append(
        f'<text x="0" y="{_HEIGHT + 12}" font-size="10">{html.escape(labels[0])}</text>'
        f'<text x="{_WIDTH}" y="{_HEIGHT + 12}" font-size="10" text-anchor="end">'
        f"{html.escape(labels[-1])}</text></svg>"
    )
    return "".join(parts)


def column_chart(column: ColumnProfile, reference: ColumnProfile | None) -> str:
    """SVG of the column's distribution, with the reference's beside it when given."""
    if column.family in ("numeric", "datetime") and column.finite_count:
        low = (
            column.min
            if reference is None or reference.min is None
            else min(column.min or 0.0, reference.min)
        )
        high = (
            column.max
            if reference is None or reference.max is None
            else max(column.max or 0.0, reference.max)
        )
        if low is None or high is None or high <= low:
            return ""
        bins = 20
        points = [low + (high - low) * i / bins for i in range(1, bins)]
        series = [("current", column.pmf(points))]
        if reference is not None and reference.finite_count:
            series.append(("reference", reference.pmf(points)))
        labels = [format_value(column, low)] + [""] * (bins - 2) + [format_value(column, high)]
        return _bars(series, labels)
    if column.family in ("string", "boolean"):
        top = [k for k, _ in column.top_k(12)]
        if reference is not None:
            for k, _ in reference.top_k(12):
                if k not in top and len(top) < 16:
                    top.append(k)
        if not top:
            return ""
        current = column.category_frequencies()
        series = [("current", [current.get(k, 0.0) for k in top])]
        if reference is not None:
            ref = reference.category_frequencies()
            series.append(("reference", [ref.get(k, 0.0) for k in top]))
        return _bars(series, top)
    return ""


def _template() -> Any:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("conveyor", "templates"), autoescape=select_autoescape(["html"])
    )
    return env.get_template("data/report.html")


def _columns(
    profile: Profile,
    reference: Profile | None = None,
    anomalies: dict[str, list[Any]] | None = None,
    drift: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    from markupsafe import Markup

    columns = []
    for column in profile:
        ref = None if reference is None else reference.columns.get(column.name)
        columns.append(
            {
                "name": column.name,
                "kind": column.kind,
                "dtype": column.dtype,
                "nulls": f"{column.null_count} ({column.null_fraction:.1%})",
                "min": format_value(column, column.min),
                "max": format_value(column, column.max),
                "mean": format_value(column, column.mean) if column.family == "numeric" else "-",
                "drift": (drift or {}).get(column.name),
                "anomalies": (anomalies or {}).get(column.name, []),
                "chart": Markup(column_chart(column, ref)),
            }
        )
    return columns


def render_html(report: ValidationReport) -> str:
    """The validation page: verdict, anomalies (errors first) and per-column charts."""
    by_column: dict[str, list[Any]] = {}
    for anomaly in report.anomalies:
        by_column.setdefault(anomaly.column, []).append(anomaly)
    return str(
        _template().render(
            validation=True,
            ok=report.ok,
            summary=report.summary(),
            anomalies=report.anomalies,
            rows=report.profile.row_count,
            columns=_columns(report.profile, report.reference, by_column, report.drift),
            has_reference=report.reference is not None,
        )
    )


def render_profile_html(profile: Profile, title: str | None = None) -> str:
    """A profile's page: statistics and charts per column, and no verdict (nothing was
    validated)."""
    return str(
        _template().render(
            validation=False,
            title=title,
            summary=f"{profile.row_count} rows, {len(profile)} columns.",
            anomalies=[],
            rows=profile.row_count,
            columns=_columns(profile),
            has_reference=False,
        )
    )

"""Server-built SVG: layered layout, timeline packing, charts."""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET

from conveyor.ui.svg import (
    GraphEdge,
    GraphNode,
    TimelineBar,
    bar_chart,
    histogram,
    layered_graph,
    line_chart,
    timeline,
)
from conveyor.ui.svg.graph import _layers
from conveyor.ui.svg.timeline import pack

NS = "{http://www.w3.org/2000/svg}"


def positions(svg: str) -> dict[str, tuple[float, float]]:
    """Top-left corner of every node's rect, by node id."""
    root = ET.fromstring(svg)
    found = {}
    for group in root.iter(f"{NS}g"):
        rect = group.find(f"{NS}rect")
        assert rect is not None
        found[group.attrib["data-id"]] = (float(rect.attrib["x"]), float(rect.attrib["y"]))
    return found


def nodes(*ids: str) -> list[GraphNode]:
    return [GraphNode(id=i, label=i, status="completed") for i in ids]


def edges(*pairs: str) -> list[GraphEdge]:
    return [GraphEdge(p[0], p[1]) for p in pairs]


def test_layers_follow_the_longest_path():
    layer = _layers(nodes("a", "b", "c", "d"), edges("ab", "bc", "cd", "ad"))
    assert layer == {"a": 0, "b": 1, "c": 2, "d": 3}


def test_every_edge_points_right_and_the_svg_parses():
    ns = nodes("a", "b", "c", "d", "e", "f")
    es = edges("ab", "ac", "bd", "cd", "de", "af", "fe")
    place = positions(layered_graph(ns, es))
    assert set(place) == {n.id for n in ns}
    for e in es:
        assert place[e.source][0] < place[e.target][0], e


def test_barycenter_sweeps_remove_a_crossing():
    # Initial order puts d above c, so a->c and b->d would cross.
    ns = nodes("a", "b", "d", "c")
    place = positions(layered_graph(ns, edges("ac", "bd")))
    assert place["a"][1] < place["b"][1]
    assert place["c"][1] < place["d"][1]


def test_a_cycle_does_not_hang_and_unknown_edges_are_ignored():
    svg = layered_graph(nodes("a", "b"), edges("ab", "ba", "ax"))
    assert set(positions(svg)) == {"a", "b"}


def test_labels_are_escaped_and_cached_steps_marked():
    svg = layered_graph(
        [
            GraphNode(id="x", label="<script>alert(1)</script>", href="/a?b=1&c=2"),
            GraphNode(id="y", label="load", cached=True, status="completed"),
        ],
        [],
    )
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert 'href="/a?b=1&amp;c=2"' in svg
    ET.fromstring(svg)
    cached = re.search(r'data-id="y".*?</g>', svg, re.S)
    assert cached is not None
    assert "stroke-dasharray" in cached.group(0)
    assert "cached" in cached.group(0)


def test_empty_graph_is_empty():
    assert layered_graph([], []) == ""


def test_pack_uses_as_many_lanes_as_the_peak_concurrency():
    bars = [
        TimelineBar("a", 0, 10),
        TimelineBar("b", 1, 3),
        TimelineBar("c", 2, 4),
        TimelineBar("d", 3.5, 9),  # b's lane is free again at 3
        TimelineBar("e", 10, 11),
    ]
    lanes = pack(bars)
    assert max(lanes) + 1 == 3
    for lane in set(lanes):
        spans = sorted((b.start, b.end) for b, at in zip(bars, lanes, strict=True) if at == lane)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start


def test_timeline_of_thousands_of_steps_stays_compact():
    bars = [TimelineBar(f"s{i}", i * 0.01, i * 0.01 + 0.05, "completed") for i in range(3000)]
    svg = timeline(bars, lane_height=10)
    root = ET.fromstring(svg)
    assert float(root.attrib["height"]) <= 10 * 6 + 20  # five or six overlap at once
    assert len(root.findall(f"{NS}rect")) == 3000


def test_line_chart_skips_non_finite_points_and_draws_a_legend():
    svg = line_chart({"loss": [(0, 1.0), (1, math.nan), (2, 0.5)], "empty": []}, label="c")
    root = ET.fromstring(svg)
    lines = root.findall(f"{NS}polyline")
    assert len(lines) == 1
    assert len(lines[0].attrib["points"].split()) == 2
    assert "loss" in svg
    assert line_chart({"x": [(0, math.inf)]}) == ""


def test_bar_chart_and_histogram():
    svg = bar_chart([("a", 0.75), ("b", 0.25)], percent=True)
    assert "75.0%" in svg and "25.0%" in svg
    ET.fromstring(svg)
    assert histogram([0, 1], [1, 2]) == ""  # edges must be one longer than counts
    hist = ET.fromstring(histogram([0, 1, 2], [3, 1]))
    heights = [float(r.attrib["height"]) for r in hist.findall(f"{NS}rect")]
    assert math.isclose(heights[0], 3 * heights[1], rel_tol=0.01)

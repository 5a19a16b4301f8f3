"""A layered (Sugiyama-style) drawing of a directed acyclic graph, left to right.

Layers come from the longest path from a source, so every edge points right; the order
inside each layer is improved by a few barycenter sweeps (each node moves toward the mean
position of its neighbours in the adjacent layer), which removes most crossings in the
graphs pipelines and lineage produce. Edges that skip layers are drawn as curves.
The run DAG and the lineage graph both use it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from conveyor.ui.svg._common import NEUTRAL, colour, open_svg, text

NODE_W = 168
NODE_H = 30
COL_GAP = 56
ROW_GAP = 12
MARGIN = 10
SWEEPS = 6
LABEL_CHARS = 22


@dataclass(frozen=True)
class GraphNode:
    """One node of a drawing.

    Attributes:
        id: Unique within the graph.
        label: Shown inside the node (shortened when long; the title holds it whole).
        kind: ``step`` (filled with its status colour) or any other kind (outlined).
        status: Status of a step (colour); ignored for other kinds.
        cached: A step that was a cache hit: drawn with a dashed border and a mark.
        href: Where a click on the node goes.
        title: Tooltip text.
        focus: The node the drawing is about (thicker border).
    """

    id: str
    label: str
    kind: str = "step"
    status: str | None = None
    cached: bool = False
    href: str | None = None
    title: str | None = None
    focus: bool = False


@dataclass(frozen=True)
class GraphEdge:
    """A directed edge between two node ids."""

    source: str
    target: str


def _layers(nodes: Sequence[GraphNode], edges: Sequence[GraphEdge]) -> dict[str, int]:
    """Longest-path layer of every node; a node on a cycle keeps its best layer so far."""
    ids = [n.id for n in nodes]
    preds: dict[str, list[str]] = defaultdict(list)
    succs: dict[str, list[str]] = defaultdict(list)
    indegree = dict.fromkeys(ids, 0)
    for e in edges:
        if e.source in indegree and e.target in indegree and e.source != e.target:
            preds[e.target].append(e.source)
            succs[e.source].append(e.target)
            indegree[e.target] += 1
    layer = dict.fromkeys(ids, 0)
    ready = [i for i in ids if indegree[i] == 0]
    done: set[str] = set()
    while ready:
        current = ready.pop()
        done.add(current)
        for nxt in succs[current]:
            layer[nxt] = max(layer[nxt], layer[current] + 1)
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    return layer


def _order(
    columns: dict[int, list[str]], edges: Sequence[GraphEdge], layer: dict[str, int]
) -> None:
    """Reorder each column in place by barycenter sweeps, left-to-right then back."""
    neighbours_left: dict[str, list[str]] = defaultdict(list)
    neighbours_right: dict[str, list[str]] = defaultdict(list)
    for e in edges:
        if e.source in layer and e.target in layer:
            neighbours_left[e.target].append(e.source)
            neighbours_right[e.source].append(e.target)
    depth = max(columns) if columns else 0
    for sweep in range(SWEEPS):
        forward = sweep % 2 == 0
        sequence = range(1, depth + 1) if forward else range(depth - 1, -1, -1)
        for col in sequence:
            fixed = columns.get(col - 1 if forward else col + 1, [])
            position = {node: i for i, node in enumerate(fixed)}
            links = neighbours_left if forward else neighbours_right
            current = columns[col]

            here = {node: i for i, node in enumerate(current)}

            def key(
                node: str,
                _pos: dict[str, int] = position,
                _links: dict[str, list[str]] = links,
                _here: dict[str, int] = here,
            ) -> tuple[float, int]:
                places = [_pos[n] for n in _links[node] if n in _pos]
                mean = sum(places) / len(places) if places else float(_here[node])
                return (mean, _here[node])

            columns[col] = sorted(current, key=key)


def layered_graph(
    nodes: Sequence[GraphNode], edges: Sequence[GraphEdge], *, label: str = "graph"
) -> str:
    """The SVG of a DAG laid out in layers from left to right.

    Args:
        nodes: The nodes; their order is the initial order inside each layer.
        edges: Edges between node ids (edges naming unknown ids are ignored).
        label: Accessible name of the drawing.
    """
    if not nodes:
        return ""
    layer = _layers(nodes, edges)
    columns: dict[int, list[str]] = defaultdict(list)
    for node in nodes:
        columns[layer[node.id]].append(node.id)
    _order(columns, edges, layer)
    tallest = max(len(c) for c in columns.values())
    height = MARGIN * 2 + tallest * NODE_H + (tallest - 1) * ROW_GAP
    width = MARGIN * 2 + (max(columns) + 1) * (NODE_W + COL_GAP) - COL_GAP
    place: dict[str, tuple[float, float]] = {}
    for col, members in columns.items():
        span = len(members) * NODE_H + (len(members) - 1) * ROW_GAP
        top = MARGIN + (height - 2 * MARGIN - span) / 2
        for i, node_id in enumerate(members):
            place[node_id] = (
                MARGIN + col * (NODE_W + COL_GAP),
                top + i * (NODE_H + ROW_GAP),
            )
    parts = [open_svg(width, height, label, "graph")]
    parts.append(
        '<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#868e96"/>'
        "</marker></defs>"
    )
    for e in edges:
        if e.source not in place or e.target not in place:
            continue
        sx, sy = place[e.source]
        tx, ty = place[e.target]
        x1, y1 = sx + NODE_W, sy + NODE_H / 2
        x2, y2 = tx, ty + NODE_H / 2
        bend = max((x2 - x1) / 2, 20)
        parts.append(
            f'<path d="M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} '
            f'{x2:.1f},{y2:.1f}" fill="none" stroke="{NEUTRAL}" stroke-width="1.2" '
            'marker-end="url(#arrow)"/>'
        )
    for node in nodes:
        x, y = place[node.id]
        parts.append(_node(node, x, y))
    parts.append("</svg>")
    return "".join(parts)


def _node(node: GraphNode, x: float, y: float) -> str:
    is_step = node.kind == "step"
    fill = colour("cached" if node.cached else node.status) if is_step else "#f8f9fa"
    ink = "#fff" if is_step else "#212529"
    stroke = "#212529" if node.focus else (fill if is_step else NEUTRAL)
    dash = ' stroke-dasharray="4 2"' if node.cached else ""
    radius = 4 if is_step else NODE_H / 2
    title = node.title or node.label
    classes = f"node {text(node.kind)}" + (f" {text(node.status)}" if node.status else "")
    body = [
        f'<g class="{classes}" data-id="{text(node.id)}"><title>{text(title)}</title>',
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="{radius:.0f}" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="{2.5 if node.focus else 1.2}"{dash}/>',
    ]
    label = node.label
    chars = LABEL_CHARS - (3 if node.cached else 0)
    if not is_step:
        body.append(
            f'<text x="{x + 10:.1f}" y="{y + 11:.1f}" font-size="8" fill="{NEUTRAL}">'
            f"{text(node.kind)}</text>"
        )
    body.append(
        f'<text x="{x + 10:.1f}" y="{y + (19 if is_step else 24):.1f}" font-size="12" '
        f'fill="{ink}">{text(label, chars)}</text>'
    )
    if node.cached:
        body.append(
            f'<text x="{x + NODE_W - 8:.1f}" y="{y + 19:.1f}" font-size="11" fill="{ink}" '
            'text-anchor="end">cached</text>'
            if len(label) <= 12
            else f'<text x="{x + NODE_W - 8:.1f}" y="{y + 19:.1f}" font-size="12" '
            f'fill="{ink}" text-anchor="end">\u21ba</text>'
        )
    body.append("</g>")
    inner = "".join(body)
    if node.href:
        return f'<a href="{text(node.href)}">{inner}</a>'
    return inner

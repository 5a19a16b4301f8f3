"""Artifact page (metadata, preview, uses) and the lineage graph from any node."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from conveyor.api.queries import artifacts as aq
from conveyor.api.queries import lineage as lq
from conveyor.ui.svg import GraphEdge, GraphNode, layered_graph
from conveyor.ui.views._base import UI, markup, page_guard, query_int

if TYPE_CHECKING:
    from fastapi import APIRouter

PREVIEW_ROWS = 10


def node_href(node_id: str, attrs: Any = None) -> str | None:
    """The page of a lineage node (None for kinds without a page)."""
    kind, _, key = node_id.partition(":")
    attrs = attrs or {}
    if kind == "artifact":
        return f"/artifacts/{quote(key)}"
    if kind == "run":
        return f"/runs/{quote(key)}"
    if kind == "step":
        run_id = attrs.get("run_id")
        return f"/runs/{quote(str(run_id))}/steps/{quote(key)}" if run_id else None
    if kind in ("model", "dataset"):
        name, _, version = key.rpartition(":")
        if not name:
            return f"/{kind}s/{quote(key)}"
        return f"/{kind}s/{quote(name)}/{quote(version)}"
    if kind == "monitor":
        return f"/monitors/{quote(key)}"
    if kind == "request":
        return f"/lineage?node={quote(node_id)}"
    return None


def lineage_url(node_id: str) -> str:
    return f"/lineage?node={quote(node_id, safe=':@')}"


def artifact_page(ui: UI, request: Request, artifact_id: str) -> Response:
    detail = aq.get_artifact(ui.store, artifact_id)
    preview = aq.preview_artifact(ui.store, ui.artifacts, detail.artifact.id, rows=PREVIEW_ROWS)
    return ui.render(
        request,
        "artifact.html",
        title=f"Artifact {detail.artifact.name}",
        section="runs",
        a=detail.artifact,
        d=detail,
        p=preview,
        lineage=lineage_url(f"artifact:{detail.artifact.id}"),
    )


def lineage_page(ui: UI, request: Request) -> Response:
    node = (request.query_params.get("node") or "").strip()
    if not node:
        return ui.render(
            request,
            "lineage.html",
            title="Lineage",
            section="lineage",
            graph=None,
            node="",
            direction="both",
            depth=5,
            drawing="",
            rows=[],
        )
    direction = request.query_params.get("direction") or "both"
    depth = query_int(request, "depth", 5, 1, 50)
    graph = lq.lineage_graph(
        ui.store, node, direction=direction, depth=depth, max_nodes=300, artifacts=ui.artifacts
    )
    nodes = [
        GraphNode(
            id=n.id,
            label=n.label,
            kind=n.kind,
            status=n.attrs.get("status") if n.kind == "step" else None,
            cached=bool(n.attrs.get("cache_hit")) if n.kind == "step" else False,
            href=node_href(n.id, n.attrs),
            title=f"{n.kind} {n.label}",
            focus=n.id == graph.root,
        )
        for n in graph.nodes
    ]
    drawing = layered_graph(
        nodes, [GraphEdge(e.source, e.target) for e in graph.edges], label=f"lineage of {node}"
    )
    rows = [
        {
            "node": n,
            "href": node_href(n.id, n.attrs),
            # Only the kinds the graph can start from get a "lineage from here" link.
            "center": lineage_url(n.id) if n.kind in lq.NODE_KINDS else None,
        }
        for n in graph.nodes
    ]
    return ui.render(
        request,
        "lineage.html",
        title=f"Lineage of {node}",
        section="lineage",
        graph=graph,
        node=node,
        direction=direction,
        depth=depth,
        drawing=markup(drawing),
        rows=rows,
    )


def add_routes(ui: UI, router: APIRouter) -> None:
    def artifact(request: Request, artifact_id: str) -> Response:
        return artifact_page(ui, request, artifact_id)

    def lineage(request: Request) -> Response:
        return lineage_page(ui, request)

    router.add_api_route("/artifacts/{artifact_id}", page_guard(ui, artifact), methods=["GET"])
    router.add_api_route("/lineage", page_guard(ui, lineage), methods=["GET"])

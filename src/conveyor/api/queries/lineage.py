"""Lineage graphs up and down from an artifact, a step run, a run, a model version, a
dataset version or a prediction request id.

The graph is walked level by level with a fixed number of queries per level (never one
per node), up to `depth` levels and `max_nodes` nodes; `truncated` says when it stopped
early. Edges point downstream: from what was used to what it produced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.stores.metadata import MetadataStore

NODE_KINDS = ("artifact", "step", "run", "model", "dataset", "request")
DIRECTIONS = ("up", "down", "both")


@dataclass(frozen=True)
class LineageNode:
    """A node of the graph.

    Attributes:
        id: ``<kind>:<key>``: ``artifact:<id>``, ``step:<step run id>``, ``run:<id>``,
            ``model:<name>:<version>``, ``dataset:<name>:<version>``, ``request:<id>``,
            ``monitor:<name>``.
        kind: The part before the first colon.
        label: Short text to show.
        attrs: A few fields to show beside it (status, type, size, run id, ...).
    """

    id: str
    kind: str
    label: str
    attrs: Mapping[str, Any]


@dataclass(frozen=True)
class LineageEdge:
    """``source`` was used to make ``target`` (``label``: the input/output name)."""

    source: str
    target: str
    label: str


@dataclass(frozen=True)
class LineageGraph:
    """The nodes and edges reached from `root`."""

    root: str
    nodes: tuple[LineageNode, ...]
    edges: tuple[LineageEdge, ...]
    truncated: bool


def lineage_graph(
    db: MetadataStore,
    node: str,
    *,
    direction: str = "both",
    depth: int = 10,
    max_nodes: int = 500,
    artifacts: ArtifactStore | None = None,
) -> LineageGraph:
    """The lineage graph around `node`.

    Args:
        db: The metadata store.
        node: ``artifact:<id>``, ``step:<id>``, ``run:<id>``, ``model:<name>:<version>``
            (or ``model:<name>@<alias>``), ``dataset:<name>:<version>`` or
            ``request:<prediction request id>``.
        direction: ``up`` (what it came from), ``down`` (what came from it) or ``both``.
        depth: Levels of step runs to walk in each direction (1..50).
        max_nodes: Stop adding nodes past this many (1..5000).
        artifacts: The artifact store; needed only for ``request:`` (prediction logs).

    Raises:
        QueryError: a malformed node id, direction, depth or max_nodes.
        NotFoundError: the node does not exist.
    """
    from conveyor.api.queries._lineage_walk import walk

    return walk(db, node, direction=direction, depth=depth, max_nodes=max_nodes, artifacts=artifacts)

"""Lineage graphs up and down from an artifact, a step run, a run, a model version, a
dataset version or a prediction request id.

The graph is walked level by level with a fixed number of queries per level (never one
per node), up to `depth` levels and `max_nodes` nodes; `truncated` says when it stopped
early. Edges point downstream: from what was used to what it produced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.api.queries._page import QueryError, reading
from conveyor.exceptions import NotFoundError
from conveyor.stores.metadata import tables as t
from conveyor.stores.metadata import tables_monitoring as tm
from conveyor.stores.metadata import tables_registry as r

if TYPE_CHECKING:
    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.stores.metadata import MetadataStore

NODE_KINDS = ("artifact", "step", "run", "model", "dataset", "request")
DIRECTIONS = ("up", "down", "both")
MAX_DEPTH = 50
MAX_NODES = 5000


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
    if direction not in DIRECTIONS:
        raise QueryError(f"The 'direction' parameter must be up, down or both. Got {direction!r}.")
    if not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        raise QueryError(f"The 'depth' parameter must be an int in 1..{MAX_DEPTH}. Got {depth!r}.")
    if not isinstance(max_nodes, int) or not 1 <= max_nodes <= MAX_NODES:
        raise QueryError(
            f"The 'max_nodes' parameter must be an int in 1..{MAX_NODES}. Got {max_nodes!r}."
        )
    kind, _, key = node.partition(":")
    if kind not in NODE_KINDS or not key:
        raise QueryError(
            f"{node!r} is not a lineage node. Use artifact:ID, step:ID, run:ID, "
            "model:NAME:VERSION (or model:NAME@ALIAS), dataset:NAME:VERSION or request:ID."
        )
    walk = _Walk(db, max_nodes)
    with reading(db) as c:
        walk.c = c
        root, up_steps, down_steps, up_artifacts, down_artifacts = walk.seed(kind, key, artifacts)
        if direction in ("up", "both"):
            walk.upward(up_artifacts, up_steps, depth)
        if direction in ("down", "both"):
            walk.downward(down_artifacts, down_steps, depth)
        walk.fill()
    return LineageGraph(
        root=root,
        nodes=tuple(walk.nodes.values()),
        edges=tuple(walk.edges),
        truncated=walk.truncated,
    )


class _Walk:
    """Level-by-level traversal; a fixed number of queries per level."""

    def __init__(self, db: MetadataStore, max_nodes: int) -> None:
        self.db = db
        self.c: sa.Connection
        self.max_nodes = max_nodes
        self.nodes: dict[str, LineageNode] = {}
        self.edges: dict[LineageEdge, None] = {}
        self.truncated = False
        self.step_rows: dict[str, Any] = {}
        self.artifact_ids: set[str] = set()

    # ------------------------------------------------------------ bookkeeping
    def add(self, node_id: str, kind: str, label: str, **attrs: Any) -> bool:
        if node_id in self.nodes:
            return True
        if len(self.nodes) >= self.max_nodes:
            self.truncated = True
            return False
        self.nodes[node_id] = LineageNode(node_id, kind, label, attrs)
        return True

    def link(self, source: str, target: str, label: str = "") -> None:
        if source in self.nodes and target in self.nodes:
            self.edges[LineageEdge(source, target, label)] = None

    def add_steps(self, ids: set[str]) -> set[str]:
        """Load and add step nodes; returns the ids that were added."""
        s = t.step_runs
        missing = [i for i in ids if i not in self.step_rows]
        if missing:
            for loaded in self.c.execute(
                sa.select(
                    s.c.id, s.c.run_id, s.c.name, s.c.status, s.c.cache_hit, s.c.params
                ).where(s.c.id.in_(missing))
            ):
                self.step_rows[loaded.id] = loaded
        added = set()
        for step_id in sorted(ids):
            row = self.step_rows.get(step_id)
            if row is None:
                continue
            if self.add(
                f"step:{step_id}",
                "step",
                row.name,
                status=row.status,
                run_id=row.run_id,
                cache_hit=bool(row.cache_hit),
            ):
                added.add(step_id)
        return added

    def add_artifacts(self, ids: set[str]) -> set[str]:
        added = set()
        for artifact_id in sorted(ids):
            if self.add(f"artifact:{artifact_id}", "artifact", artifact_id):
                self.artifact_ids.add(artifact_id)
                added.add(artifact_id)
        return added

    def fill(self) -> None:
        """Give artifact nodes their names and types (one query)."""
        a = t.artifacts
        if not self.artifact_ids:
            return
        for row in self.c.execute(
            sa.select(a.c.id, a.c.name, a.c.type_name, a.c.size, a.c.run_id).where(
                a.c.id.in_(list(self.artifact_ids))
            )
        ):
            node_id = f"artifact:{row.id}"
            self.nodes[node_id] = LineageNode(
                node_id,
                "artifact",
                row.name,
                {"type": row.type_name, "size": row.size, "run_id": row.run_id},
            )

    # ------------------------------------------------------------ seeds
    def seed(
        self, kind: str, key: str, artifacts: ArtifactStore | None
    ) -> tuple[str, set[str], set[str], set[str], set[str]]:
        """The root node id and the steps/artifacts to walk up and down from."""
        if kind == "artifact":
            detail = self.db.get_artifact(key)
            self.add_artifacts({detail["id"]})
            return f"artifact:{detail['id']}", set(), set(), {detail["id"]}, {detail["id"]}
        if kind == "step":
            if not self.add_steps({key}):
                raise NotFoundError(f"No step run with id {key!r}.")
            return f"step:{key}", {key}, {key}, set(), set()
        if kind == "run":
            run = self.db.get_run(key)
            root = f"run:{run['id']}"
            self.add(root, "run", run["pipeline"], status=run["status"])
            ids = set(
                self.c.execute(
                    sa.select(t.step_runs.c.id)
                    .where(t.step_runs.c.run_id == run["id"])
                    .limit(self.max_nodes)
                ).scalars()
            )
            steps = self.add_steps(ids)
            for step_id in steps:
                self.link(root, f"step:{step_id}", "step")
            return root, steps, steps, set(), set()
        if kind == "model":
            return self.seed_model(key)
        if kind == "dataset":
            return self.seed_dataset(key)
        return self.seed_request(key, artifacts)

    def seed_model(self, key: str) -> tuple[str, set[str], set[str], set[str], set[str]]:
        from conveyor.api.queries.models import get_model_version

        if "@" in key:
            name, _, version = key.rpartition("@")
        else:
            name, _, version = key.rpartition(":")
        if not name or not version:
            raise QueryError(f"{key!r} is not a model version. Use model:NAME:VERSION.")
        detail = get_model_version(self.db, name, version)
        number = detail.version.version
        root = self.add_model(name, number, detail.version.run_id)
        steps: set[str] = set()
        if detail.step_run_id and self.add_steps({detail.step_run_id}):
            steps.add(detail.step_run_id)
            self.link(f"step:{detail.step_run_id}", root, "registered")
        self.models_downstream([(name, number)])
        return root, steps, set(), set(), set()

    def add_model(self, name: str, version: int, run_id: str | None) -> str:
        node_id = f"model:{name}:{version}"
        self.add(node_id, "model", f"{name}/{version}", run_id=run_id)
        return node_id

    def models_downstream(self, versions: Sequence[tuple[str, int]]) -> None:
        """Monitors that watched these versions and the runs their reports triggered."""
        if not versions:
            return
        rep, mon, ev = tm.monitor_reports, tm.monitors, tm.trigger_events
        pairs = [sa.and_(rep.c.model_name == n, rep.c.model_version == v) for n, v in versions]
        rows = self.c.execute(
            sa.select(rep.c.id, rep.c.model_name, rep.c.model_version, mon.c.name)
            .join(mon, mon.c.id == rep.c.monitor_id)
            .where(sa.or_(*pairs))
            .order_by(rep.c.window_end.desc())
            .limit(self.max_nodes)
        ).all()
        by_report: dict[str, str] = {}
        for row in rows:
            monitor = f"monitor:{row.name}"
            if self.add(monitor, "monitor", row.name):
                self.link(f"model:{row.model_name}:{row.model_version}", monitor, "monitored")
                by_report[row.id] = monitor
        if not by_report:
            return
        for event in self.c.execute(
            sa.select(ev.c.report_id, ev.c.run_id, ev.c.pipeline, ev.c.kind)
            .where(ev.c.report_id.in_(list(by_report)), ev.c.run_id.is_not(None))
            .limit(self.max_nodes)
        ):
            run = f"run:{event.run_id}"
            if self.add(run, "run", event.pipeline, trigger=event.kind):
                self.link(by_report[event.report_id], run, f"triggered ({event.kind})")

    def seed_dataset(self, key: str) -> tuple[str, set[str], set[str], set[str], set[str]]:
        from conveyor.api.queries.datasets import get_dataset_version

        name, _, version = key.replace("@", ":").rpartition(":")
        if not name or not version.isdigit():
            raise QueryError(f"{key!r} is not a dataset version. Use dataset:NAME:VERSION.")
        detail = get_dataset_version(self.db, name, int(version))
        ref = detail.version.ref
        root = f"dataset:{name}:{detail.version.version}"
        self.add(root, "dataset", ref, rows=detail.version.row_count)
        if detail.version.run_id:
            run = f"run:{detail.version.run_id}"
            self.add(run, "run", "registered it")
            self.link(run, root, "registered")
        readers: set[str] = set()
        if detail.read_by:
            s = t.step_runs
            for row in self.c.execute(
                sa.select(s.c.id, s.c.params).where(
                    s.c.run_id.in_(list(detail.read_by)), s.c.step == "dataset"
                )
            ):
                dataset = (row.params or {}).get("dataset")
                if isinstance(dataset, Mapping) and dataset.get("ref") == ref:
                    readers.add(row.id)
        added = self.add_steps(readers)
        for step_id in added:
            self.link(root, f"step:{step_id}", "read")
        return root, set(), added, set(), set()

    def seed_request(
        self, key: str, artifacts: ArtifactStore | None
    ) -> tuple[str, set[str], set[str], set[str], set[str]]:
        if artifacts is None:
            raise QueryError("Lineage of a prediction request needs the artifact store.")
        found = find_prediction(artifacts, key)
        if found is None:
            raise NotFoundError(
                f"No prediction with request id {key!r} in the prediction log "
                "(predictions/ in the artifact store)."
            )
        name, version, segment = found
        root = f"request:{key}"
        self.add(root, "request", key, segment=segment)
        try:
            return self._request_model(root, name, version)
        except NotFoundError:
            return root, set(), set(), set(), set()

    def _request_model(
        self, root: str, name: str, version: int
    ) -> tuple[str, set[str], set[str], set[str], set[str]]:
        from conveyor.api.queries.models import get_model_version

        detail = get_model_version(self.db, name, version)
        model = self.add_model(name, version, detail.version.run_id)
        self.link(model, root, "answered")
        steps: set[str] = set()
        if detail.step_run_id and self.add_steps({detail.step_run_id}):
            steps.add(detail.step_run_id)
            self.link(f"step:{detail.step_run_id}", model, "registered")
        return root, steps, set(), set(), set()

    # ------------------------------------------------------------ walks
    def upward(self, artifacts: set[str], steps: set[str], depth: int) -> None:
        e = t.edges
        for _ in range(depth):
            if artifacts:
                producers = self.c.execute(
                    sa.select(e.c.step_run_id, e.c.artifact_id, e.c.name).where(
                        e.c.artifact_id.in_(list(artifacts)), e.c.direction == "out"
                    )
                ).all()
                new_steps = {p.step_run_id for p in producers} - set(self.step_rows)
                steps |= self.add_steps(new_steps)
                for p in producers:
                    self.link(f"step:{p.step_run_id}", f"artifact:{p.artifact_id}", p.name)
            if not steps:
                return
            self.datasets_read(steps)
            inputs = self.c.execute(
                sa.select(e.c.step_run_id, e.c.artifact_id, e.c.name).where(
                    e.c.step_run_id.in_(list(steps)), e.c.direction == "in"
                )
            ).all()
            artifacts = self.add_artifacts({i.artifact_id for i in inputs} - self.artifact_ids)
            for i in inputs:
                self.link(f"artifact:{i.artifact_id}", f"step:{i.step_run_id}", i.name)
            steps = set()
            if not artifacts:
                return
        self.truncated = True

    def datasets_read(self, steps: set[str]) -> None:
        for step_id in steps:
            row = self.step_rows.get(step_id)
            dataset = (row.params or {}).get("dataset") if row is not None else None
            if isinstance(dataset, Mapping) and isinstance(dataset.get("ref"), str):
                name, _, version = dataset["ref"].rpartition("@")
                node = f"dataset:{name}:{version}"
                if self.add(node, "dataset", dataset["ref"]):
                    self.link(node, f"step:{step_id}", "read")

    def downward(self, artifacts: set[str], steps: set[str], depth: int) -> None:
        e, v = t.edges, r.model_versions
        for _ in range(depth):
            if artifacts:
                consumers = self.c.execute(
                    sa.select(e.c.step_run_id, e.c.artifact_id, e.c.name).where(
                        e.c.artifact_id.in_(list(artifacts)), e.c.direction == "in"
                    )
                ).all()
                steps |= self.add_steps({x.step_run_id for x in consumers} - set(self.step_rows))
                for x in consumers:
                    self.link(f"artifact:{x.artifact_id}", f"step:{x.step_run_id}", x.name)
            if not steps:
                return
            outputs = self.c.execute(
                sa.select(e.c.step_run_id, e.c.artifact_id, e.c.name).where(
                    e.c.step_run_id.in_(list(steps)), e.c.direction == "out"
                )
            ).all()
            artifacts = self.add_artifacts({o.artifact_id for o in outputs} - self.artifact_ids)
            for o in outputs:
                self.link(f"step:{o.step_run_id}", f"artifact:{o.artifact_id}", o.name)
            registered = self.c.execute(
                sa.select(r.models.c.name, v.c.version, v.c.step_run_id, v.c.run_id)
                .join(r.models, r.models.c.id == v.c.model_id)
                .where(v.c.step_run_id.in_(list(steps)))
            ).all()
            for row in registered:
                model = self.add_model(row.name, row.version, row.run_id)
                self.link(f"step:{row.step_run_id}", model, "registered")
            self.models_downstream([(row.name, row.version) for row in registered])
            steps = set()
            if not artifacts:
                return
        self.truncated = True


def find_prediction(
    artifacts: ArtifactStore, request_id: str, *, max_segments: int = 2000
) -> tuple[str, int, str] | None:
    """(model name, model version, segment path) of the prediction with `request_id`.

    Reads only the ``_request_id``/``_model``/``_model_version`` columns of the newest
    `max_segments` prediction-log segments, newest first.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    paths = sorted(
        artifacts.list_files("predictions/"),
        key=lambda p: p.rsplit("/", 2)[-2:],
        reverse=True,
    )
    for path in paths[:max_segments]:
        if not path.endswith(".parquet"):
            continue
        try:
            table = pq.read_table(
                pa.BufferReader(artifacts.read_file(path)),
                columns=["_request_id", "_model", "_model_version"],
            )
        except (OSError, ValueError, KeyError, pa.ArrowInvalid):
            continue
        hits = table.filter(pc.equal(table["_request_id"], request_id))
        if hits.num_rows:
            version = str(hits["_model_version"][0].as_py())
            if version.isdigit():
                return str(hits["_model"][0].as_py()), int(version), path
    return None

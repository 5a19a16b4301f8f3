"""One logged request, traced: the rows it sent, what answered, and where that came from.

The prediction log (``predictions/<model>/<day>/<time>-...parquet``) names the model and
version of every answered batch; the registry links that version to its training run,
the data versions the run read and the code it ran.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import NotFoundError

if TYPE_CHECKING:
    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.stores.metadata import MetadataStore


def _segment_day(path: str) -> dt.date | None:
    parts = path.split("/")
    try:
        return dt.date.fromisoformat(parts[2])
    except (IndexError, ValueError):
        return None


def find_request(
    request_id: str,
    *,
    metadata_store: MetadataStore,
    artifact_store: ArtifactStore,
    model: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> dict[str, Any]:
    """Everything recorded about a request id.

    Returns ``{"request_id", "answers": [...]}``; each answer (one per logged batch with
    that id) holds the model, version, time, rows (inputs and outputs) and the lineage of
    the version: run, pipeline, code, data versions read.

    Args:
        model: Only this model's log (faster on stores holding many models).
        since, until: Only segments of these days (epoch seconds).

    Raises:
        NotFoundError: no logged prediction has this request id.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from conveyor.registry.registry import Registry

    prefix = f"predictions/{model}/" if model else "predictions/"
    first = dt.datetime.fromtimestamp(since, dt.UTC).date() if since is not None else None
    last = dt.datetime.fromtimestamp(until, dt.UTC).date() if until is not None else None
    answers: list[dict[str, Any]] = []
    for path in artifact_store.list_files(prefix):
        if not path.endswith(".parquet"):
            continue
        day = _segment_day(path)
        if day is not None and ((first and day < first) or (last and day > last)):
            continue
        data = artifact_store.read_file(path)
        ids = pq.read_table(io.BytesIO(data), columns=["_request_id"]).column("_request_id")
        mask = pc.equal(ids.cast(pa.string()), request_id)
        if not pc.any(mask).as_py():
            continue
        rows = pq.read_table(io.BytesIO(data)).filter(mask)
        for version in sorted(set(rows.column("_model_version").to_pylist())):
            sub = rows.filter(pc.equal(rows.column("_model_version"), version))
            name = str(sub.column("_model")[0].as_py())
            stamp = sub.column("_timestamp").cast(pa.timestamp("us", "UTC"))[0].as_py()
            answers.append(
                {
                    "model": name,
                    "version": int(version),
                    "timestamp": stamp.timestamp(),
                    "segment": path,
                    "rows": [
                        {k: v for k, v in row.items() if k != "_request_id"}
                        for row in sub.to_pylist()
                    ],
                }
            )
    if not answers:
        where = f" of model {model}" if model else ""
        raise NotFoundError(
            f"No logged prediction{where} has request id {request_id!r}. Request ids come "
            "from the X-Request-ID header (or are generated and returned in it); predictions "
            "are logged when the server runs with its prediction log on."
        )
    registry = Registry(metadata_store, artifact_store)
    for answer in answers:
        try:
            graph = registry.lineage(f"{answer['model']}/{answer['version']}")
        except NotFoundError:
            answer["lineage"] = None
            continue
        answer["lineage"] = {
            "run": graph["run"],
            "step_run": graph["step_run"],
            "code": graph["code"],
            "data": graph["data"],
            "aliases": graph["model"].get("aliases", []),
        }
    answers.sort(key=lambda a: a["timestamp"])
    return {"request_id": request_id, "answers": answers}


__all__ = ["find_request"]

"""`Run` and `Artifact`: read-side views of what a run recorded, with values that load."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conveyor.exceptions import NotFoundError, did_you_mean
from conveyor.materializers.base import default_registry
from conveyor.stores.artifacts import ArtifactStore, open_artifact_store
from conveyor.stores.metadata import MetadataStore, open_metadata_store


@dataclass(frozen=True)
class Artifact:
    """A stored value: its metadata row plus `load()`."""

    id: str
    name: str
    content_hash: str
    materializer: str
    type_name: str
    size: int
    summary: dict[str, Any]
    store: ArtifactStore = field(repr=False, compare=False)

    @classmethod
    def from_row(cls, row: dict[str, Any], store: ArtifactStore) -> Artifact:
        return cls(
            id=row["id"],
            name=row["name"],
            content_hash=row["content_hash"],
            materializer=row["materializer"],
            type_name=row["type_name"],
            size=row["size"],
            summary=dict(row.get("summary") or {}),
            store=store,
        )

    def load(self) -> Any:
        """The Python value, read back through the materializer that stored it.

        Raises:
            ArtifactCorruptError: the bytes are missing or do not match the recorded hash.
        """
        data = self.store.get(self.content_hash)
        return default_registry().by_name(self.materializer).load(data, self.summary)


class Run:
    """A pipeline run as recorded in the metadata store."""

    def __init__(
        self, row: dict[str, Any], metadata: MetadataStore, artifacts: ArtifactStore
    ) -> None:
        self._row = row
        self._metadata = metadata
        self._artifacts = artifacts

    @classmethod
    def get(cls, run_id: str, *, db_url: str, artifact_url: str) -> Run:
        metadata = open_metadata_store(db_url)
        return cls(metadata.get_run(run_id), metadata, open_artifact_store(artifact_url))

    @property
    def id(self) -> str:
        return str(self._row["id"])

    @property
    def pipeline(self) -> str:
        return str(self._row["pipeline"])

    @property
    def status(self) -> str:
        return str(self._row["status"])

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._row.get("params") or {})

    @property
    def duration(self) -> float | None:
        start, end = self._row.get("started_at"), self._row.get("ended_at")
        return None if start is None or end is None else float(end - start)

    @property
    def record(self) -> dict[str, Any]:
        """A copy of the run's metadata row."""
        return dict(self._row)

    def _artifact(self, artifact_id: str) -> Artifact:
        return Artifact.from_row(self._metadata.get_artifact(artifact_id), self._artifacts)

    @property
    def outputs(self) -> dict[str, Artifact | list[Artifact]]:
        """The run's outputs by name (lists for mapped outputs)."""
        result: dict[str, Artifact | list[Artifact]] = {}
        for name, value in (self._row.get("outputs") or {}).items():
            if isinstance(value, list):
                result[name] = [self._artifact(v) for v in value]
            else:
                result[name] = self._artifact(value)
        return result

    def output(self, name: str | None = None) -> Any:
        """Load one output's value; `name` may be omitted when the run has one output.

        Raises:
            NotFoundError: no output of that name.
        """
        outputs = self.outputs
        if name is None:
            if len(outputs) != 1:
                raise NotFoundError(
                    f"Run {self.id} has {len(outputs)} outputs ({', '.join(outputs) or 'none'}); "
                    "name the one to load."
                )
            name = next(iter(outputs))
        if name not in outputs:
            raise NotFoundError(
                f"Run {self.id} has no output {name!r}." + did_you_mean(name, list(outputs))
            )
        value = outputs[name]
        if isinstance(value, list):
            return [a.load() for a in value]
        return value.load()

    def steps(self) -> list[dict[str, Any]]:
        """Step run rows (status, attempts, timings, cache hit and its source)."""
        return self._metadata.step_runs(self.id)

    def step(self, name: str) -> dict[str, Any]:
        return self._metadata.find_step_run(self.id, name)

    def logs(self, step: str) -> str:
        """What the step printed and logged (for a cache hit: the run it reused)."""
        row = self.step(step)
        return self._metadata.get_logs(row["cache_source"] if row["cache_hit"] else row["id"])

    def metrics(self) -> dict[str, float]:
        """The last value of each metric logged in the run."""
        return self._metadata.latest_metrics(self.id)

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.pipeline} {self.status}>"


def get_run(run_id: str, *, settings: Any = None) -> Run:
    """The recorded run with this id (or a unique prefix), from the configured stores.

    Raises:
        NotFoundError: no such run.
    """
    if settings is None:
        from conveyor.config import load_settings

        settings = load_settings()
    return Run.get(run_id, db_url=settings.db_url, artifact_url=settings.artifact_url)

"""`DatasetRef`: a partitioned dataset handed to a step by reference.

A `DatasetRef` is a small value: the artifact store's URL and, per partition, the content
hash and row count of one Parquet blob in it. Passing one between steps moves a few hundred
bytes, never the data; whoever reads a partition (a Dask worker of a distributed fit, a
step, a notebook) opens the store and reads that blob itself, verified against its hash.
Because the hashes are part of the ref's bytes, a downstream step's cache key changes
exactly when the data does.

Build one with `DatasetRef.write` (from a frame or table, in this process), or with
`partition_dataset` from a registered dataset version.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import DataError, StoreError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from conveyor.data.profile import Profile
    from conveyor.stores.artifacts import ArtifactStore

FORMAT_VERSION = 1
_DEFAULT_ROWS = 1_000_000


@dataclass(frozen=True)
class Partition:
    """One Parquet blob of a partitioned dataset."""

    content_hash: str
    rows: int


@dataclass(frozen=True)
class DatasetRef:
    """A partitioned dataset in an artifact store, by reference.

    Attributes:
        artifact_url: The store holding the partitions (shared storage on a cluster).
        partitions: The Parquet blobs, in order.
        columns: Column name -> Arrow type, as text.
        name: The dataset it was made from (``churn@3``), or None.
    """

    artifact_url: str
    partitions: tuple[Partition, ...]
    columns: tuple[tuple[str, str], ...]
    name: str | None = None

    __conveyor_artifact__ = True

    # ------------------------------------------------------------------ building
    @classmethod
    def write(
        cls,
        data: Any,
        *,
        partitions: int | None = None,
        rows_per_partition: int | None = None,
        artifact_store: ArtifactStore | None = None,
        name: str | None = None,
    ) -> DatasetRef:
        """Split a table into Parquet partitions stored in the artifact store.

        Args:
            data: A pandas DataFrame or an Arrow table.
            partitions: How many partitions (contiguous row ranges). Give this or
                `rows_per_partition`; by default one per million rows.
            rows_per_partition: Rows per partition instead.
            artifact_store: Where to write; the running step's store, or the project's.
            name: A label recorded with the ref (e.g. the dataset version).

        Raises:
            DataError: bad partition counts, or a table without rows.
        """
        import pyarrow as pa

        from conveyor.data.datasets import _snapshot
        from conveyor.data.profile import _to_table

        table = _to_table(data)
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        store = artifact_store or _default_store()
        rows = int(table.num_rows)
        if rows == 0:
            raise DataError("Cannot partition a table without rows.")
        size = _partition_size(rows, partitions, rows_per_partition)
        parts = []
        for start in range(0, rows, size):
            chunk = table.slice(start, min(size, rows - start))
            content_hash, _ = store.put(_snapshot(chunk))
            parts.append(Partition(content_hash, int(chunk.num_rows)))
        columns = tuple(
            (str(n), str(t)) for n, t in zip(table.schema.names, table.schema.types, strict=True)
        )
        return cls(store.url, tuple(parts), columns, name)

    # ------------------------------------------------------------------ reading
    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def row_count(self) -> int:
        return sum(p.rows for p in self.partitions)

    def __len__(self) -> int:
        return len(self.partitions)

    def read_table(self, index: int, columns: Sequence[str] | None = None) -> pa.Table:
        """Partition `index` as an Arrow table, read from the store by whoever calls it.

        Raises:
            DataError: no such partition, or a column that is not in the dataset.
            ArtifactCorruptError: the blob is missing or damaged.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        from conveyor.stores.artifacts import open_artifact_store

        if not 0 <= index < len(self.partitions):
            raise DataError(
                f"Partition {index} does not exist; this dataset has {len(self.partitions)}."
            )
        if columns is not None:
            self.check_columns(columns)
        data = open_artifact_store(self.artifact_url).get(self.partitions[index].content_hash)
        return pq.read_table(pa.BufferReader(data), columns=list(columns) if columns else None)

    def read_partition(self, index: int, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Partition `index` as a pandas DataFrame (see `read_table`)."""
        return self.read_table(index, columns).to_pandas()

    def iter_partitions(self) -> Iterator[pd.DataFrame]:
        """Every partition in order, one in memory at a time."""
        for index in range(len(self.partitions)):
            yield self.read_partition(index)

    def to_pandas(self) -> pd.DataFrame:
        """All partitions in one DataFrame (pulls the whole dataset into this process)."""
        import pandas as pd

        return pd.concat(list(self.iter_partitions()), ignore_index=True)

    def check_columns(self, names: Sequence[str]) -> None:
        """Raises DataError naming a column that is not in the dataset (with a suggestion)."""
        from conveyor.exceptions import did_you_mean

        known = self.column_names
        for name in names:
            if name not in known:
                raise DataError(
                    f"The dataset {self.label} has no column {name!r}." + did_you_mean(name, known)
                )

    @property
    def label(self) -> str:
        return self.name or f"of {len(self.partitions)} partitions"

    def profile(self, map_partitions: Callable[..., list[Any]] | None = None) -> Profile:
        """The merged Profile of all partitions.

        Args:
            map_partitions: ``map_partitions(fn, indices) -> [fn(i) ...]``, to compute the
                per-partition profiles elsewhere (on the Dask workers); in this process by
                default.
        """
        from conveyor.data.profile import Profile

        indices = list(range(len(self.partitions)))
        run = map_partitions or (lambda fn, items: [fn(i) for i in items])
        return Profile.merge_all(run(self.partition_profile, indices))

    def partition_profile(self, index: int) -> Profile:
        from conveyor.data.profile import Profile

        return Profile.from_frame(self.read_table(index))

    # ------------------------------------------------------------------ bytes
    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "format": FORMAT_VERSION,
                "artifact_url": self.artifact_url,
                "partitions": [[p.content_hash, p.rows] for p in self.partitions],
                "columns": [list(c) for c in self.columns],
                "name": self.name,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> DatasetRef:
        """Raises: DataError: the bytes are not a DatasetRef this conveyor reads."""
        from conveyor.stores.artifacts import _check_hash

        try:
            raw = json.loads(data)
            if int(raw.get("format", 0)) > FORMAT_VERSION:
                raise DataError(
                    f"This dataset reference has format {raw['format']}; this conveyor reads "
                    f"up to {FORMAT_VERSION}. Upgrade conveyor."
                )
            parts = tuple(Partition(_check_hash(str(h)), int(n)) for h, n in raw["partitions"])
            columns = tuple((str(n), str(t)) for n, t in raw["columns"])
            return cls(str(raw["artifact_url"]), parts, columns, raw.get("name"))
        except (ValueError, KeyError, TypeError, StoreError) as exc:
            raise DataError(f"These bytes are not a dataset reference: {exc}.") from exc

    def artifact_summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "partitions": len(self.partitions),
            "rows": self.row_count,
            "columns": self.column_names[:200],
        }

    def __repr__(self) -> str:
        return (
            f"DatasetRef({self.label!r}, partitions={len(self.partitions)}, "
            f"rows={self.row_count}, columns={len(self.columns)})"
        )


def _partition_size(rows: int, partitions: int | None, rows_per_partition: int | None) -> int:
    if partitions is not None and rows_per_partition is not None:
        raise DataError("Give either 'partitions' or 'rows_per_partition', not both.")
    if partitions is not None:
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise DataError(
                f"The 'partitions' parameter must be an int >= 1. Got {partitions!r} instead."
            )
        return -(-rows // min(partitions, rows))
    size = rows_per_partition if rows_per_partition is not None else _DEFAULT_ROWS
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DataError(
            f"The 'rows_per_partition' parameter must be an int >= 1. Got {size!r} instead."
        )
    return size


def _default_store() -> ArtifactStore:
    from conveyor.stores.artifacts import open_artifact_store
    from conveyor.stores.defaults import default_urls

    return open_artifact_store(default_urls()[1])


def partition_dataset(
    name: str,
    version: int | None = None,
    *,
    partitions: int | None = None,
    rows_per_partition: int | None = None,
) -> DatasetRef:
    """A registered dataset version as a `DatasetRef` (name or ``name@version``).

    The version's data is read once, by whoever calls this (inside a step: a worker), and
    written as partitions next to its snapshot in the same artifact store; identical
    partitions are stored once.

    Raises:
        NotFoundError: no such dataset or version.
        DataError: bad partition counts.
    """
    from conveyor.data.datasets import get_dataset
    from conveyor.stores.defaults import default_stores

    metadata_store, artifact_store = default_stores(None, None)
    found = get_dataset(name, version, metadata_store=metadata_store)
    return DatasetRef.write(
        found.load_table(artifact_store),
        partitions=partitions,
        rows_per_partition=rows_per_partition,
        artifact_store=artifact_store,
        name=found.ref,
    )


__all__ = ["DatasetRef", "Partition", "partition_dataset"]

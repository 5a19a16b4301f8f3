"""Named, versioned datasets.

A dataset version points at a content-addressed Parquet snapshot in the artifact store, or
at a pinned external version (a Delta table version), and stores the Profile and row count
of the data. Registering identical content again returns the existing version.

Every write happens in one transaction, after the source has been read completely: a
failed read never leaves a version behind.
"""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlalchemy as sa

from conveyor._internal.ids import new_id
from conveyor._internal.names import check_name
from conveyor.core.step import step
from conveyor.data.profile import Profile, _to_table
from conveyor.exceptions import DataError, NotFoundError, did_you_mean
from conveyor.stores.defaults import default_stores
from conveyor.stores.metadata import tables_data as t

if TYPE_CHECKING:
    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.stores.metadata import MetadataStore


@dataclass(frozen=True)
class DatasetVersion:
    """One version of a named dataset (a copy of its row; no live connection)."""

    id: str
    name: str
    version: int
    fingerprint: str
    content_hash: str | None
    uri: str | None
    source: str
    source_kind: str
    external_version: str | None
    row_count: int
    columns: dict[str, str]
    profile_hash: str
    created_at: float
    origin: dict[str, Any] | None = None

    @property
    def ref(self) -> str:
        """``name@version``, as shown in lineage and accepted by the CLI."""
        return f"{self.name}@{self.version}"

    def load_table(self, artifact_store: ArtifactStore) -> pa.Table:
        """The data of this version as an Arrow table."""
        if self.content_hash is not None:
            import pyarrow.parquet as pq

            return pq.read_table(pa.BufferReader(artifact_store.get(self.content_hash)))
        if self.source_kind == "delta":
            from conveyor.data.ingest import read_delta

            version = int(self.external_version) if self.external_version else None
            table: pa.Table = read_delta(self.source, version=version, as_="arrow")
            return table
        raise DataError(f"Dataset version {self.ref} has neither a snapshot nor a pinned source.")

    def load(self, artifact_store: ArtifactStore) -> Any:
        """The data of this version as a pandas DataFrame."""
        return self.load_table(artifact_store).to_pandas()

    def load_profile(self, artifact_store: ArtifactStore) -> Profile:
        return Profile.from_bytes(artifact_store.get(self.profile_hash))

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        out = asdict(self)
        out["ref"] = self.ref
        return out


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``"customers@3"`` -> ("customers", 3); ``"customers"`` -> ("customers", None)."""
    name, sep, version = ref.partition("@")
    if not sep:
        return name, None
    try:
        number = int(version)
    except ValueError:
        raise DataError(
            f"{ref!r} is not a dataset reference. Use NAME or NAME@VERSION, e.g. customers@3."
        ) from None
    return name, number


def _snapshot(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    # Fixed writer settings, no pandas metadata: the same rows give the same bytes.
    pq.write_table(
        table.replace_schema_metadata(None), buffer, compression="zstd", store_schema=False
    )
    return buffer.getvalue()


def _row(mapping: Any, name: str) -> DatasetVersion:
    return DatasetVersion(
        id=mapping["id"],
        name=name,
        version=int(mapping["version"]),
        fingerprint=mapping["fingerprint"],
        content_hash=mapping["content_hash"],
        uri=mapping["uri"],
        source=mapping["source"],
        source_kind=mapping["source_kind"],
        external_version=mapping["external_version"],
        row_count=int(mapping["row_count"]),
        columns=dict(mapping["columns"]),
        profile_hash=mapping["profile_hash"],
        created_at=float(mapping["created_at"]),
        origin=dict(mapping["origin"]) if mapping.get("origin") else None,
    )


def register_dataset(
    name: str,
    source: Any,
    *,
    metadata_store: MetadataStore | None = None,
    artifact_store: ArtifactStore | None = None,
    format: str | None = None,
    delimiter: str = ",",
    encoding: str = "utf-8",
    delta_version: int | None = None,
    snapshot: bool | None = None,
    description: str | None = None,
    origin: dict[str, Any] | None = None,
) -> DatasetVersion:
    """Register the data of `source` as the next version of dataset `name`.

    Args:
        name: Dataset name (letters, digits, ``-``, ``_``, ``.``).
        source: A path (CSV, Parquet file or folder, Delta table), a DataFrame or an Arrow
            table.
        format: Force csv, parquet or delta instead of detecting it from the path.
        encoding: Text encoding of a CSV source (``latin-1``, ``cp1252``, ...).
        delta_version: Pin a Delta table version (default: the current one).
        snapshot: Copy the data into the artifact store. Defaults to True, except for
            Delta tables, whose versions are immutable and are pinned instead.
        origin: JSON-able record of how the data was made (lineage), stored with the
            version; for a DataFrame or Arrow source its ``kind`` and ``source`` keys
            become the version's source_kind and source.
            `conveyor.monitoring.dataset_from_predictions` fills it.

    Returns:
        The new version, or the existing one when its content is identical.

    Raises:
        DataError: the source cannot be read or the name is invalid. Nothing is written.
    """
    _check_name(name)
    metadata_store, artifact_store = default_stores(metadata_store, artifact_store)
    from conveyor.data import ingest

    external: str | None = None
    if isinstance(source, (str, Path)):
        kind = format or ingest.detect_format(source)
        source_text = str(Path(source).resolve())
        if kind == "delta":
            resolved = ingest.delta_version(source, delta_version)
            external = str(resolved)
            table = ingest.read_table(source, format="delta", version=resolved)
        else:
            if kind == "parquet" and Path(source).is_dir():
                _check_folder(Path(source))
            table = ingest.read_table(source, format=kind, delimiter=delimiter, encoding=encoding)
    else:
        # Data conveyor made itself (origin given) is described by its origin.
        kind = str((origin or {}).get("kind", "frame"))
        source_text = str((origin or {}).get("source", f"<{type(source).__name__}>"))
        table = _to_table(source)
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
    if table.num_columns == 0:
        raise DataError(
            f"Nothing to register as {name!r}: {source_text} has no columns. Check the source."
        )
    if snapshot is None:
        snapshot = kind != "delta"
    profile = Profile.from_frame(table)
    content_hash = uri = None
    if snapshot:
        content_hash, uri = artifact_store.put(_snapshot(table))
        fingerprint = f"sha256:{content_hash}"
    elif external is not None:
        fingerprint = f"delta:{source_text}@{external}"
    else:
        raise DataError("snapshot=False is only possible for Delta tables (pinned versions).")
    profile_hash, _ = artifact_store.put(profile.to_bytes())
    columns = {n: str(ty) for n, ty in zip(table.schema.names, table.schema.types, strict=True)}
    for _attempt in range(3):
        try:
            return _insert_version(
                metadata_store,
                name,
                {
                    "description": description,
                    "fingerprint": fingerprint,
                    "content_hash": content_hash,
                    "uri": uri,
                    "source": source_text,
                    "source_kind": kind,
                    "external_version": external,
                    "row_count": table.num_rows,
                    "columns": columns,
                    "profile_hash": profile_hash,
                    "origin": origin,
                },
            )
        except sa.exc.IntegrityError:
            continue  # another writer took the number; read again and retry
    raise DataError(f"Could not register a version of {name!r}: concurrent writers.")


def _insert_version(store: MetadataStore, name: str, fields: dict[str, Any]) -> DatasetVersion:
    description = fields["description"]
    fingerprint = fields["fingerprint"]
    from conveyor.core.context import current_context

    context = current_context()
    now = time.time()
    with store.engine.begin() as c:
        dataset = c.execute(sa.select(t.datasets).where(t.datasets.c.name == name)).first()
        if dataset is None:
            dataset_id = new_id()
            c.execute(
                t.datasets.insert(),
                [{"id": dataset_id, "name": name, "description": description, "created_at": now}],
            )
        else:
            dataset_id = dataset.id
            existing = (
                c.execute(
                    sa.select(t.dataset_versions)
                    .where(
                        t.dataset_versions.c.dataset_id == dataset_id,
                        t.dataset_versions.c.fingerprint == fingerprint,
                    )
                    .order_by(t.dataset_versions.c.version)
                    .limit(1)
                )
                .mappings()
                .first()
            )
            if existing is not None:
                return _row(existing, name)
        latest = c.execute(
            sa.select(sa.func.max(t.dataset_versions.c.version)).where(
                t.dataset_versions.c.dataset_id == dataset_id
            )
        ).scalar()
        row = {
            "id": new_id(),
            "dataset_id": dataset_id,
            "version": int(latest or 0) + 1,
            **{k: v for k, v in fields.items() if k != "description"},
            "created_at": now,
            "run_id": context.run_id if context is not None else None,
        }
        c.execute(t.dataset_versions.insert(), [row])
        from conveyor.stores.metadata import events as ev

        ev.record_event(
            c,
            ev.DATASET_VERSION_CREATED,
            name,
            f"Dataset {name} version {row['version']} created",
            links={"dataset_version": f"{name}/{row['version']}", "run_id": row["run_id"]},
            data={"row_count": row.get("row_count"), "source": row.get("source")},
        )
    return _row(row, name)


def _check_folder(folder: Path) -> None:
    """A folder of Parquet files must hold some, all agreeing on every column's type.

    Reading the folder as one dataset would cast every file to the first one's types;
    a version must hold the values as they are, so a disagreement is refused instead.

    Raises:
        DataError: the folder holds no Parquet file, or two files give a column different
            types (both named).
    """
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    try:
        files = sorted(ds.dataset(folder, format="parquet").files)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"Cannot open the folder {str(folder)!r} as Parquet: {exc}") from exc
    if not files:
        raise DataError(
            f"The folder {str(folder)!r} holds no Parquet files: nothing to register. Point "
            "at a folder of .parquet files (names starting with '.' or '_' are skipped)."
        )
    seen: dict[str, tuple[pa.DataType, str]] = {}
    for file in files:
        try:
            schema = pq.read_schema(file)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(
                f"Cannot read Parquet file {file!r}: {exc}. The file is corrupt or truncated."
            ) from exc
        for column in schema:
            first = seen.setdefault(column.name, (column.type, file))
            if first[0] != column.type:
                raise DataError(
                    f"The files of {str(folder)!r} disagree on the type of column "
                    f"{column.name!r}: {Path(first[1]).name} has {first[0]}, "
                    f"{Path(file).name} has {column.type}. Write every file with one type "
                    "for it (or register the files as separate datasets)."
                )


_DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}")


def _check_name(name: str) -> None:
    check_name(
        name,
        _DATASET_NAME,
        "dataset name",
        "Use letters, digits, '-', '_' and '.', starting with a letter or digit (no '@').",
        DataError,
    )


def get_dataset(
    name: str, version: int | None = None, *, metadata_store: MetadataStore | None = None
) -> DatasetVersion:
    """A version of a dataset (the latest when `version` is None); also takes "name@3".

    Raises:
        NotFoundError: no such dataset or version.
    """
    if version is None and "@" in name:
        name, version = parse_ref(name)
    if metadata_store is None:
        metadata_store, _ = default_stores(None, None)
    with metadata_store.engine.connect() as c:
        dataset = c.execute(sa.select(t.datasets).where(t.datasets.c.name == name)).first()
        if dataset is None:
            names = list(c.execute(sa.select(t.datasets.c.name)).scalars())
            raise NotFoundError(
                f"No dataset named {name!r}."
                + did_you_mean(name, names)
                + " List them with `conveyor datasets list`."
            )
        query = sa.select(t.dataset_versions).where(t.dataset_versions.c.dataset_id == dataset.id)
        if version is None:
            query = query.order_by(t.dataset_versions.c.version.desc()).limit(1)
        else:
            query = query.where(t.dataset_versions.c.version == version)
        row = c.execute(query).mappings().first()
    if row is None:
        raise NotFoundError(
            f"Dataset {name!r} has no version {version}. See `conveyor datasets show {name}`."
        )
    return _row(row, name)


def find_dataset(
    name: str, version: int | None = None, *, metadata_store: MetadataStore | None = None
) -> DatasetVersion | None:
    """Like `get_dataset`, but None when it does not exist."""
    try:
        return get_dataset(name, version, metadata_store=metadata_store)
    except NotFoundError:
        return None


def list_datasets(*, metadata_store: MetadataStore | None = None) -> list[dict[str, Any]]:
    """Every dataset with its number of versions and latest version."""
    if metadata_store is None:
        metadata_store, _ = default_stores(None, None)
    v = t.dataset_versions
    query = (
        sa.select(
            t.datasets.c.name,
            t.datasets.c.description,
            t.datasets.c.created_at,
            sa.func.count(v.c.id).label("versions"),
            sa.func.max(v.c.version).label("latest"),
        )
        .select_from(t.datasets.outerjoin(v, v.c.dataset_id == t.datasets.c.id))
        .group_by(
            t.datasets.c.id, t.datasets.c.name, t.datasets.c.description, t.datasets.c.created_at
        )
        .order_by(t.datasets.c.name)
    )
    with metadata_store.engine.connect() as c:
        return [dict(r) for r in c.execute(query).mappings()]


def list_versions(
    name: str, *, metadata_store: MetadataStore | None = None
) -> list[DatasetVersion]:
    """All versions of a dataset, oldest first.

    Raises:
        NotFoundError: no such dataset.
    """
    latest = get_dataset(name, metadata_store=metadata_store)
    store = metadata_store or default_stores(None, None)[0]
    with store.engine.connect() as c:
        rows = (
            c.execute(
                sa.select(t.dataset_versions)
                .where(
                    t.dataset_versions.c.dataset_id
                    == sa.select(t.datasets.c.id)
                    .where(t.datasets.c.name == latest.name)
                    .scalar_subquery()
                )
                .order_by(t.dataset_versions.c.version)
            )
            .mappings()
            .all()
        )
    return [_row(r, name) for r in rows]


@step(name="dataset", cache=False)
def _load_dataset(name: str, version: int | None = None) -> Any:
    """Load a dataset version as a DataFrame and record `name@version` in lineage."""
    from conveyor.core.context import current_context

    metadata_store, artifact_store = default_stores(None, None)
    found = get_dataset(name, version, metadata_store=metadata_store)
    context = current_context()
    if context is not None:
        context.tags["dataset"] = found.ref
        context.params["dataset"] = {
            "ref": found.ref,
            "source": found.source,
            "content_hash": found.content_hash,
            "external_version": found.external_version,
        }
    return found.load(artifact_store)


def dataset(name: str, version: int | None = None) -> Any:
    """A dataset version as a pipeline input, or as a DataFrame outside a pipeline.

    Inside a ``@pipeline`` function this adds a step named ``dataset`` that loads the
    version (never cached, so "latest" is resolved at run time) and tags its step run with
    ``dataset=name@version``; its output artifact is the data. Called directly, it returns
    the DataFrame. Stores come from the settings (conveyor.toml / environment).
    """
    if version is None and "@" in name:
        name, version = parse_ref(name)
    return _load_dataset(name=name, version=version)


__all__ = [
    "DatasetVersion",
    "dataset",
    "find_dataset",
    "get_dataset",
    "list_datasets",
    "list_versions",
    "parse_ref",
    "register_dataset",
]

"""`Monitor`: a model reference watched over its prediction log, window by window.

A window's rows are read segment by segment from ``predictions/<model>/...`` in the
artifact store (the layout the online server, batch scoring and stream consumers write),
profiled per segment and merged, so memory stays flat in the window size. Each model
version that answered requests in the window gets its own report, compared with the
training Profile stored with that version. Labels join by request id (and row within the
request) whenever they arrive; re-running a window updates its report in place.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor._internal.ids import new_id
from conveyor._internal.names import check_name
from conveyor.exceptions import ConfigError, DataError, NotFoundError, did_you_mean
from conveyor.monitoring.drift import DriftOptions
from conveyor.monitoring.report import (
    PREDICTION,
    SCORE,
    MonitorReport,
    build_report,
    decay_baseline,
    performance,
)
from conveyor.stores.metadata import tables_monitoring as tm

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from conveyor.data.profile import Profile
    from conveyor.registry.registry import Registry
    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.stores.metadata import MetadataStore

_SEGMENT = re.compile(r"(\d{4}-\d{2}-\d{2})/(\d{6})-")
_MONITOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
LABEL_CHUNK = 500


def parse_window(value: str | float) -> float:
    """Seconds in a window given as ``90``, ``30s``, ``15m``, ``1h`` or ``1d``.

    Raises:
        ConfigError: not a positive duration.
    """
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(value)
        if match is None:
            raise ConfigError(
                f"{value!r} is not a window length. Use seconds or a number with s, m, h or d "
                "(e.g. 30s, 15m, 1h, 1d)."
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ConfigError(f"A window must be longer than 0 seconds. Got {value!r} instead.")
    return seconds


@dataclass
class _Part:
    """What one model version contributed to a window."""

    profiles: list[Profile] = field(default_factory=list)
    request_ids: list[Any] = field(default_factory=list)
    rows: list[Any] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    scores: list[Any] = field(default_factory=list)


class Monitor:
    """Watches one model reference through its prediction log.

    Args:
        name: Monitor name (e.g. ``churn-prod``).
        model: Registry reference (``churn@production``); each window is compared with
            the version that served it.
        window: Window length (``1h``, ``15m``, seconds).
        options: Drift tests and thresholds.
        metadata_store: Where monitors, reports and labels live (default: settings).
        artifact_store: Where prediction logs, window Profiles and HTML pages live.
        segment_slack: Seconds a log segment may span after the time in its name.
    """

    def __init__(
        self,
        name: str,
        model: str,
        *,
        window: str | float = "1h",
        options: DriftOptions | None = None,
        metadata_store: MetadataStore | None = None,
        artifact_store: ArtifactStore | None = None,
        segment_slack: float = 900.0,
    ) -> None:
        check_name(
            name,
            _MONITOR_NAME,
            "monitor name",
            "Use letters, digits, '.', '_' and '-' (up to 200 characters, starting with a "
            "letter or digit).",
            ConfigError,
        )
        self.name = name
        self.model = model
        self.window = parse_window(window)
        self.options = options or DriftOptions()
        self.segment_slack = segment_slack
        self._metadata_store = metadata_store
        self._artifact_store = artifact_store
        self._id: str | None = None

    # ------------------------------------------------------------------ stores
    @property
    def metadata_store(self) -> MetadataStore:
        if self._metadata_store is None:
            from conveyor.config import load_settings
            from conveyor.stores.metadata import open_metadata_store

            self._metadata_store = open_metadata_store(load_settings().db_url)
        return self._metadata_store

    @property
    def artifact_store(self) -> ArtifactStore:
        if self._artifact_store is None:
            from conveyor.config import load_settings
            from conveyor.stores.artifacts import open_artifact_store

            self._artifact_store = open_artifact_store(load_settings().artifact_url)
        return self._artifact_store

    @property
    def registry(self) -> Registry:
        from conveyor.registry.registry import Registry

        return Registry(self.metadata_store, self.artifact_store)

    # ------------------------------------------------------------------ persistence
    def save(self) -> str:
        """Create or update this monitor's row; returns its id."""
        engine = self.metadata_store.engine
        now = time.time()
        values = {
            "model_ref": self.model,
            "window_seconds": self.window,
            "options": self.options.to_dict(),
            "updated_at": now,
        }
        for _ in range(3):
            with engine.begin() as c:
                row = c.execute(
                    sa.select(tm.monitors.c.id).where(tm.monitors.c.name == self.name)
                ).first()
                if row is not None:
                    c.execute(tm.monitors.update().where(tm.monitors.c.id == row.id).values(values))
                    self._id = str(row.id)
                    return self._id
            try:
                with engine.begin() as c:
                    monitor_id = new_id()
                    c.execute(
                        tm.monitors.insert(),
                        [{"id": monitor_id, "name": self.name, "created_at": now, **values}],
                    )
                    self._id = monitor_id
                    return monitor_id
            except sa.exc.IntegrityError:
                continue  # created concurrently: update it
        raise NotFoundError(f"Could not create monitor {self.name!r}.")  # pragma: no cover

    @classmethod
    def get(
        cls,
        name: str,
        *,
        metadata_store: MetadataStore,
        artifact_store: ArtifactStore | None = None,
    ) -> Monitor:
        """The stored monitor `name`.

        Raises:
            NotFoundError: no such monitor (with close matches).
        """
        with metadata_store.engine.connect() as c:
            row = c.execute(sa.select(tm.monitors).where(tm.monitors.c.name == name)).first()
            if row is None:
                names = [r.name for r in c.execute(sa.select(tm.monitors.c.name))]
                raise NotFoundError(
                    f"No monitor named {name!r}."
                    + did_you_mean(name, names)
                    + " Create one with `conveyor monitor run NAME --model MODEL@ALIAS`."
                )
        monitor = cls(
            row.name,
            row.model_ref,
            window=row.window_seconds,
            options=DriftOptions.from_dict(row.options),
            metadata_store=metadata_store,
            artifact_store=artifact_store,
        )
        monitor._id = str(row.id)
        return monitor

    @staticmethod
    def list_all(metadata_store: MetadataStore) -> list[dict[str, Any]]:
        """Every monitor with its latest report's window end and drift share."""
        r = tm.monitor_reports
        latest = (
            sa.select(r.c.monitor_id, sa.func.max(r.c.window_end).label("last_end"))
            .group_by(r.c.monitor_id)
            .subquery()
        )
        query = (
            sa.select(tm.monitors, latest.c.last_end)
            .outerjoin(latest, latest.c.monitor_id == tm.monitors.c.id)
            .order_by(tm.monitors.c.name)
        )
        with metadata_store.engine.connect() as c:
            return [dict(row) for row in c.execute(query).mappings()]

    def baseline(self) -> tuple[dict[str, float], str | None]:
        """The decay baseline of the version the monitor's reference points at now.

        Returns:
            ``(metrics, source)`` as `decay_baseline` gives them; ``({}, None)`` when the
            version was registered without an evaluation report or metrics.

        Raises:
            NotFoundError: the reference does not resolve.
        """
        version = self.registry.resolve(self.model)
        return decay_baseline(version.metrics, version.report)

    @property
    def id(self) -> str:
        if self._id is None:
            self.save()
        assert self._id is not None
        return self._id

    # ------------------------------------------------------------------ windows
    def window_bounds(self, moment: float) -> tuple[float, float]:
        """The window (aligned to multiples of its length since the epoch) holding `moment`."""
        start = math.floor(moment / self.window) * self.window
        return start, start + self.window

    def last_window_end(self) -> float | None:
        with self.metadata_store.engine.connect() as c:
            value = c.execute(
                sa.select(sa.func.max(tm.monitor_reports.c.window_end)).where(
                    tm.monitor_reports.c.monitor_id == self.id
                )
            ).scalar()
        return None if value is None else float(value)

    def due_windows(self, now: float, *, max_windows: int = 24) -> list[tuple[float, float]]:
        """Closed windows after the last report (at most `max_windows`, newest kept)."""
        current_start, _ = self.window_bounds(now)
        last = self.last_window_end()
        first = current_start - max_windows * self.window if last is None else last
        first = max(first, current_start - max_windows * self.window)
        windows = []
        start = first
        while start + self.window <= now + 1e-9:
            windows.append((start, start + self.window))
            start += self.window
        return windows

    def run_due(
        self, now: float | None = None, *, max_windows: int = 24, html: bool = True
    ) -> list[MonitorReport]:
        """Report every closed window not reported yet (what the scheduler calls)."""
        now = time.time() if now is None else now
        reports: list[MonitorReport] = []
        for start, end in self.due_windows(now, max_windows=max_windows):
            reports.extend(self.run_window(start, end, html=html))
        return reports

    # ------------------------------------------------------------------ reading the log
    def segments(self, model_name: str, start: float, end: float) -> list[str]:
        """Prediction-log segments that may hold rows in [start, end)."""
        out = []
        for path in self.artifact_store.list_files(f"predictions/{model_name}/"):
            if not path.endswith(".parquet"):
                continue
            match = _SEGMENT.search(path)
            if match is None:
                continue
            stamp = dt.datetime.strptime(match.group(1) + match.group(2), "%Y-%m-%d%H%M%S").replace(
                tzinfo=dt.UTC
            )
            moment = stamp.timestamp()
            if start - self.segment_slack <= moment < end:
                out.append(path)
        return out

    def _tables(self, model_name: str, start: float, end: float) -> Iterator[pa.Table]:
        import io

        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        low = pa.scalar(int(start * 1e6), pa.timestamp("us", "UTC"))
        high = pa.scalar(int(end * 1e6), pa.timestamp("us", "UTC"))
        for path in self.segments(model_name, start, end):
            table = pq.read_table(io.BytesIO(self.artifact_store.read_file(path)))
            if "_timestamp" not in table.column_names:
                continue
            stamps = table.column("_timestamp").cast(pa.timestamp("us", "UTC"))
            mask = pc.and_(pc.greater_equal(stamps, low), pc.less(stamps, high))
            table = table.filter(mask)
            if table.num_rows:
                yield table

    # ------------------------------------------------------------------ running
    def run_window(self, start: float, end: float, *, html: bool = True) -> list[MonitorReport]:
        """Reports for the logged predictions in [start, end), one per serving version."""
        from conveyor.registry.refs import ModelRef

        model_name = ModelRef.parse(self.model).name
        parts: dict[int, _Part] = {}
        for table in self._tables(model_name, start, end):
            for version, sub in _split_versions(table):
                part = parts.setdefault(version, _Part())
                self._absorb(part, sub)
        return [
            self._report(model_name, version, part, start, end, html=html)
            for version, part in sorted(parts.items())
        ]

    def run_frame(
        self,
        frame: Any,
        *,
        start: float,
        end: float,
        version: int | None = None,
        html: bool = True,
    ) -> MonitorReport:
        """A report for rows given directly (batch output, a stream's micro-batches).

        The frame holds the model's input columns and optionally ``_prediction``,
        ``_probabilities``/``_score`` and ``_request_id``; `version` defaults to the one
        the monitor's reference points at now.
        """
        from conveyor.data.profile import _to_table
        from conveyor.registry.refs import ModelRef

        table = _to_table(frame)
        import pyarrow as pa

        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        resolved = self.registry.resolve(
            self.model if version is None else f"{ModelRef.parse(self.model).name}/{version}"
        )
        part = _Part()
        self._absorb(part, table)
        return self._report(resolved.name, resolved.version, part, start, end, html=html)

    def _absorb(self, part: _Part, table: pa.Table) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        from conveyor.data.profile import Profile

        names = table.column_names
        if "_probabilities" in names and SCORE not in names:
            proba = table.column("_probabilities").combine_chunks()
            width = proba.type.list_size if pa.types.is_fixed_size_list(proba.type) else 1
            flat = proba.flatten().to_numpy(zero_copy_only=False).reshape(-1, max(width, 1))
            score = flat[:, 1] if flat.shape[1] == 2 else flat.max(axis=1)
            table = table.append_column(SCORE, pa.array(score))
            names = table.column_names
        keep = [n for n in names if not n.startswith("_") or n in (PREDICTION, SCORE)]
        part.profiles.append(Profile.from_frame(table.select(keep)))
        if "_request_id" in names:
            ids = table.column("_request_id").to_numpy(zero_copy_only=False)
            part.request_ids.append(ids)
            part.rows.append(_row_in_request(ids))
            if PREDICTION in names:
                part.predictions.append(table.column(PREDICTION).to_numpy(zero_copy_only=False))
            if SCORE in names:
                scores = pc.cast(table.column(SCORE), pa.float64())
                part.scores.append(scores.to_numpy(zero_copy_only=False))

    def _report(
        self,
        model_name: str,
        version: int,
        part: _Part,
        start: float,
        end: float,
        *,
        html: bool,
    ) -> MonitorReport:
        from conveyor.data.profile import Profile

        registry = self.registry
        model_version = registry.get_version(model_name, version)
        model = registry.load(model_version)
        reference = model.profile
        if isinstance(reference, (bytes, bytearray)):
            reference = Profile.from_bytes(bytes(reference))
        if reference is None:
            raise DataError(
                f"Model {model_name}/{version} has no training Profile, so drift cannot be "
                "computed. Register it with Model.from_fitted(..., profile=True)."
            )
        current = Profile.merge_all(part.profiles)
        features = list(model.signature.names)
        metrics, labeled = self._performance(model, part)
        baseline, source = decay_baseline(model_version.metrics, model_version.report)
        report = build_report(
            monitor=self.name,
            model_name=model_name,
            model_version=version,
            window_start=start,
            window_end=end,
            reference=reference,
            current=current,
            features=features,
            target=model.target,
            options=self.options,
            reference_metrics=baseline,
            baseline_source=source,
            performance_metrics=metrics,
            labeled_rows=labeled,
        )
        self._store(report, current, html=html)
        return report

    def _performance(self, model: Any, part: _Part) -> tuple[dict[str, float], int]:
        import numpy as np

        if not part.request_ids or not part.predictions:
            return {}, 0
        ids = np.concatenate(part.request_ids)
        rows = np.concatenate(part.rows)
        labels = self.labels_for(ids)
        if not labels:
            return {}, 0
        keys = [(str(i), int(r)) for i, r in zip(ids, rows, strict=True)]
        index = np.array([k in labels for k in keys])
        if not index.any():
            return {}, 0
        y = np.array([labels[k] for k, hit in zip(keys, index, strict=True) if hit], dtype=object)
        predictions = np.concatenate(part.predictions)[index]
        scores = np.concatenate(part.scores)[index] if part.scores else None
        classes = getattr(model.obj, "classes_", None)
        if classes is None and scores is not None:
            classes = sorted({str(v) for v in predictions})
        metrics = performance(y, predictions, scores, None if classes is None else list(classes))
        return metrics, int(index.sum())

    def _store(self, report: MonitorReport, profile: Profile, *, html: bool) -> None:
        report.profile_hash, _ = self.artifact_store.put(profile.to_bytes())
        report.created_at = time.time()
        r = tm.monitor_reports
        engine = self.metadata_store.engine
        key = (r.c.monitor_id == self.id, r.c.window_start == report.window_start)
        with engine.connect() as c:
            existing = c.execute(
                sa.select(r.c.id).where(*key, r.c.model_version == report.model_version)
            ).first()
        report.id = str(existing.id) if existing is not None else new_id()
        if html:
            stamp = dt.datetime.fromtimestamp(report.window_start, dt.UTC)
            report.html_path = (
                f"monitoring/{self.name}/{stamp:%Y-%m-%d}/{stamp:%H%M%S}-v{report.model_version}"
                ".html"
            )
        values = {
            "window_end": report.window_end,
            "model_name": report.model_name,
            "rows": report.rows,
            "labeled_rows": report.labeled_rows,
            "drift_share": report.drift_share,
            "dataset_drift": report.dataset_drift,
            "drifted": report.drift.drifted,
            "metrics": report.performance,
            "report": report.to_dict(),
            "profile_hash": report.profile_hash,
            "html_path": report.html_path,
            "created_at": report.created_at,
        }
        if html and report.html_path is not None:
            self.artifact_store.write_file(report.html_path, report.to_html().encode())
        try:
            with engine.begin() as c:
                if existing is None:
                    c.execute(
                        r.insert(),
                        [
                            {
                                "id": report.id,
                                "monitor_id": self.id,
                                "window_start": report.window_start,
                                "model_version": report.model_version,
                                **values,
                            }
                        ],
                    )
                    self._record_findings(c, report)
                else:
                    c.execute(r.update().where(r.c.id == report.id).values(values))
        except sa.exc.IntegrityError:
            # Another process stored this window first: keep its id, write our numbers.
            with engine.begin() as c:
                row = c.execute(
                    sa.select(r.c.id).where(*key, r.c.model_version == report.model_version)
                ).first()
                assert row is not None
                report.id = str(row.id)
                values["report"] = report.to_dict()
                c.execute(r.update().where(r.c.id == report.id).values(values))

    def _record_findings(self, c: sa.Connection, report: MonitorReport) -> None:
        """Events of a new window's report: the report, and its drift and quality findings."""
        from conveyor.stores.metadata import events as ev

        links = {
            "report_id": report.id,
            "model_version": f"{report.model_name}/{report.model_version}",
        }
        ev.record_event(
            c, ev.MONITOR_REPORT, self.name, f"{self.name}: {report.summary()}", links=links
        )
        if report.drift.drifted:
            ev.record_event(
                c,
                ev.DRIFT,
                self.name,
                f"{self.name}: drift in {', '.join(report.drift.drifted[:10])}"
                + (" (dataset drift)" if report.dataset_drift else ""),
                links=links,
                data={"drifted": list(report.drift.drifted), "share": report.drift_share},
            )
        errors = [q for q in report.quality if q.get("severity") == "error"]
        if errors:
            ev.record_event(
                c,
                ev.QUALITY,
                self.name,
                f"{self.name}: {len(errors)} data-quality error(s): {errors[0].get('message')}",
                links=links,
                data={"issues": errors[:20]},
            )

    # ------------------------------------------------------------------ reports
    def reports(self, *, limit: int = 20) -> list[MonitorReport]:
        """Stored reports, newest window first."""
        r = tm.monitor_reports
        query = (
            sa.select(r.c.id, r.c.report)
            .where(r.c.monitor_id == self.id)
            .order_by(r.c.window_end.desc(), r.c.model_version.desc())
            .limit(limit)
        )
        with self.metadata_store.engine.connect() as c:
            rows = c.execute(query).all()
        out = []
        for row in rows:
            report = MonitorReport.from_dict(row.report)
            report.id = str(row.id)
            out.append(report)
        return out

    def latest_report(self) -> MonitorReport | None:
        found = self.reports(limit=1)
        return found[0] if found else None

    # ------------------------------------------------------------------ labels
    def add_labels(self, labels: Any, *, refresh: bool = True) -> int:
        """Store ground truth: columns ``request_id``, ``label`` and optionally ``row``.

        A label given again for the same request and row replaces the earlier one. With
        `refresh`, the reports of the windows these requests belong to are recomputed
        (`refresh_labeled`), so their performance counts the new labels at once; windows
        not reported yet join the labels when they are.

        Raises:
            DataError: a required column is missing.
        """
        from conveyor.data.profile import _to_table

        table = _to_table(labels)
        names = table.schema.names
        missing = [n for n in ("request_id", "label") if n not in names]
        if missing:
            raise DataError(
                f"Labels need the columns request_id and label; missing {', '.join(missing)}. "
                f"Got columns {', '.join(names)}."
            )
        ids = table.column("request_id").to_pylist()
        values = table.column("label").to_pylist()
        rows = table.column("row").to_pylist() if "row" in names else [0] * len(ids)
        now = time.time()
        records = [
            {
                "monitor_id": self.id,
                "request_id": str(i),
                "row": int(r or 0),
                "label": _plain(v),
                "created_at": now,
            }
            for i, r, v in zip(ids, rows, values, strict=True)
            if i is not None and v is not None
        ]
        _upsert_labels(self.metadata_store.engine, records)
        if refresh:
            self.refresh_labeled({r["request_id"] for r in records})
        return len(records)

    def refresh_labeled(
        self, request_ids: Iterable[Any] | None = None, *, html: bool = True
    ) -> list[MonitorReport]:
        """Recompute the reported windows that hold these requests (their reports update
        in place, keeping their ids).

        Args:
            request_ids: Requests whose labels arrived; None: every labeled request.
            html: Rewrite the reports' HTML pages too.

        Returns:
            The recomputed reports (empty when no reported window holds the requests).
        """
        from conveyor.monitoring import _labels
        from conveyor.registry.refs import ModelRef

        ids = _labels.labeled_request_ids(self) if request_ids is None else request_ids
        model_name = ModelRef.parse(self.model).name
        reports: list[MonitorReport] = []
        for start, end in _labels.windows_holding(self, model_name, ids):
            reports.extend(self.run_window(start, end, html=html))
        return reports

    def labels_for(self, request_ids: Iterable[Any]) -> dict[tuple[str, int], Any]:
        """Labels of these requests, keyed by (request id, row within the request)."""
        unique = sorted({str(i) for i in request_ids})
        out: dict[tuple[str, int], Any] = {}
        lab = tm.monitor_labels
        with self.metadata_store.engine.connect() as c:
            for i in range(0, len(unique), LABEL_CHUNK):
                chunk = unique[i : i + LABEL_CHUNK]
                for row in c.execute(
                    sa.select(lab.c.request_id, lab.c.row, lab.c.label).where(
                        lab.c.monitor_id == self.id, lab.c.request_id.in_(chunk)
                    )
                ):
                    out[(row.request_id, int(row.row))] = row.label
        return out


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return value


def _upsert_labels(engine: sa.Engine, records: Sequence[Mapping[str, Any]]) -> None:
    if not records:
        return
    lab = tm.monitor_labels
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg = pg_insert(lab)
        statement: Any = pg.on_conflict_do_update(
            index_elements=[lab.c.monitor_id, lab.c.request_id, lab.c.row],
            set_={"label": pg.excluded.label, "created_at": pg.excluded.created_at},
        )
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        lite = sqlite_insert(lab)
        statement = lite.on_conflict_do_update(
            index_elements=[lab.c.monitor_id, lab.c.request_id, lab.c.row],
            set_={"label": lite.excluded.label, "created_at": lite.excluded.created_at},
        )
    with engine.begin() as c:
        for i in range(0, len(records), 5000):
            c.execute(statement, list(records[i : i + 5000]))


def _split_versions(table: pa.Table) -> Iterator[tuple[int, pa.Table]]:
    import pyarrow.compute as pc

    if "_model_version" not in table.column_names:
        raise DataError(
            "A prediction-log segment has no _model_version column; it was not written by "
            "conveyor's prediction logger."
        )
    versions = table.column("_model_version")
    for value in pc.unique(versions).to_pylist():
        sub = table.filter(pc.equal(versions, value))
        yield int(value), sub


def _row_in_request(ids: np.ndarray) -> np.ndarray:
    """Position of each row within its request (rows of a request are contiguous)."""
    import numpy as np

    n = len(ids)
    if not n:
        return np.zeros(0, dtype=np.int64)
    starts = np.ones(n, dtype=bool)
    starts[1:] = ids[1:] != ids[:-1]
    index = np.arange(n)
    first = np.maximum.accumulate(np.where(starts, index, 0))
    return np.asarray(index - first, dtype=np.int64)


__all__ = ["Monitor", "parse_window"]

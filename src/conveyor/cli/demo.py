"""`conveyor demo`: the closed loop, locally, on the embedded default stores.

A churn model is trained on a registered dataset and promoted, served by a real uvicorn
server that logs its predictions, receives normal traffic and then drifted traffic whose
labels arrive. The monitor reports each window against the training Profile of the
version that served it. The drifted window's logged predictions, joined with their labels,
become a new dataset version (lineage back to the window and its report); the drift
trigger starts the retraining pipeline on it, the gate scores candidate and champion on
the same fresh holdout, the alias moves only when it passes, the server hot-reloads, and
the next window is monitored against the new version. Every hop is printed and linked in
the metadata store (model -> run -> trigger event -> monitor report, and run -> dataset
version -> prediction-log window -> report).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.cli import common
from conveyor.core.pipeline import pipeline
from conveyor.core.step import step
from conveyor.triggers.specs import on_drift

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.config import Settings
    from conveyor.core.pipeline import Pipeline

MODEL = "churn"
ALIAS = "production"
MONITOR = "churn-prod"
TRAIN_DATA = "churn-train"
FRESH_DATA = "churn-fresh"
ROWS_TRAIN = 6000
ROWS_WINDOW = 3000
REQUEST_ROWS = 100


# ---------------------------------------------------------------------------- pipeline
@step
def train_candidate(frame: pd.DataFrame, seed: int = 0) -> Any:
    """Fit a gradient-boosted churn model on 75% of the frame; keep the rest as holdout."""
    from pandas.api.types import is_numeric_dtype
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from conveyor.monitoring.generator import TARGET
    from conveyor.training.model import Model

    train = frame.sample(frac=0.75, random_state=seed)
    categorical = [c for c in train.columns if not is_numeric_dtype(train[c])]
    numeric = [c for c in train.columns if c not in categorical and c != TARGET]
    prep = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median"), numeric),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categorical,
            ),
        ]
    )
    estimator = make_pipeline(prep, HistGradientBoostingClassifier(max_iter=120, random_state=0))
    estimator.fit(train.drop(columns=[TARGET]), train[TARGET])
    return Model.from_fitted(estimator, train, target=TARGET)


@step(models=[f"{MODEL}@{ALIAS}"])  # a new champion means a new gate decision
def gate_and_register(model: Any, frame: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
    """Champion vs candidate on the same fresh holdout; promote only if the gate passes."""
    from conveyor.evaluation.gate import Gate
    from conveyor.evaluation.metrics import evaluate
    from conveyor.registry.registry import register_model

    holdout = frame.drop(frame.sample(frac=0.75, random_state=seed).index)
    report = evaluate(model, holdout, metrics=["roc_auc", "accuracy"], bootstrap=0)
    # The gate scores the champion on the same holdout rows and records both; the
    # candidate must reach 0.6 and be at least as good as the champion there.
    decision = Gate(primary="roc_auc", min_value=0.6, max_regression=0.0).check(
        report, f"{MODEL}@{ALIAS}"
    )
    version = register_model(
        model, MODEL, report=report, decision=decision, promote_to=ALIAS, reason="demo loop"
    )
    return {
        "version": version.version,
        "promoted": decision.passed,
        "candidate_roc_auc": report.metrics["roc_auc"],
        "champion_roc_auc": decision.champion_metrics.get("roc_auc"),
        "champion_basis": decision.champion_basis,
        "rows": decision.rows,
        "reasons": decision.reasons,
    }


def make_retrain() -> Pipeline[Any, Any]:
    """The retraining pipeline: dataset version -> candidate -> gate -> register (+ promote).

    Started by drift in the ``churn-prod`` monitor (share of drifted features >= 30%, at
    most once per 10 minutes), training on the latest version of ``churn-fresh``: the
    monitor's labeled predictions (`conveyor datasets from-predictions`).
    """
    from conveyor.data.datasets import dataset

    @pipeline(triggers=[on_drift(MONITOR, share=0.3, cooldown=600, params={"data": FRESH_DATA})])
    def retrain(data: str = TRAIN_DATA, seed: int = 0) -> dict[str, Any]:
        frame = dataset(data)
        model = train_candidate(frame, seed)
        return gate_and_register(model, frame, seed)

    return retrain  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[tuple[str, Any]]:
    """A real uvicorn server for churn@production on a free 127.0.0.1 port."""
    import httpx
    import uvicorn

    from conveyor.registry.registry import get_registry
    from conveyor.serving.app import ServeOptions, create_app
    from conveyor.serving.predlog import LogPolicy
    from conveyor.serving.servable import RegistrySource
    from conveyor.stores.artifacts import open_artifact_store
    from conveyor.stores.metadata import open_metadata_store

    registry = get_registry(
        open_metadata_store(settings.db_url), open_artifact_store(settings.artifact_url)
    )
    app = create_app(
        RegistrySource(f"{MODEL}@{ALIAS}", registry),
        ServeOptions(
            unseen="pass",
            reload_interval=0.25,
            prediction_log=LogPolicy(roll_rows=100_000, roll_seconds=0.5),
        ),
        log_store=open_artifact_store(settings.artifact_url),
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="conveyor-demo-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=url, timeout=10) as client:
        while True:
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the demo server did not become ready within 30 s")
            time.sleep(0.05)
        try:
            yield url, app
        finally:
            server.should_exit = True
            thread.join(15)


def send(url: str, frame: pd.DataFrame, prefix: str) -> dict[str, int]:
    """POST the rows in requests of REQUEST_ROWS with our own request ids; versions seen."""
    import httpx
    import numpy as np

    from conveyor.monitoring.generator import TARGET

    features = frame.drop(columns=[TARGET])
    versions: dict[str, int] = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(0, len(features), REQUEST_ROWS):
            part = features.iloc[i : i + REQUEST_ROWS]
            records = [
                {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
                for r in part.to_dict(orient="records")
            ]
            response = client.post(
                "/predict", json={"records": records}, headers={"X-Request-ID": f"{prefix}-{i}"}
            )
            response.raise_for_status()
            version = str(response.json()["version"])
            versions[version] = versions.get(version, 0) + len(part)
    return versions


def labels_for(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Ground truth for the rows `send` posted, keyed by request id and row."""
    import numpy as np
    import pandas as pd

    from conveyor.monitoring.generator import TARGET

    index = np.arange(len(frame))
    return pd.DataFrame(
        {
            "request_id": [f"{prefix}-{i - i % REQUEST_ROWS}" for i in index],
            "row": index % REQUEST_ROWS,
            "label": frame[TARGET].to_numpy(),
        }
    )


# ---------------------------------------------------------------------------- the loop
DEMO_MARKER = ".conveyor-demo"


def run_demo(path: Path, seed: int = 0) -> int:
    """Run the closed loop in `path` (created if missing); returns an exit code.

    Every run starts from nothing: the stores, data and reports an earlier demo left in
    `path` are removed first. A non-empty folder the demo did not make is refused.
    """
    import shutil

    from conveyor.config import load_settings

    if path.exists() and any(path.iterdir()) and not (path / DEMO_MARKER).exists():
        common.fail(
            f"{path} is not empty and was not made by `conveyor demo`; the demo would mix "
            "its stores with yours. Choose another folder with --path."
        )
    for name in (".conveyor", "reports", "data"):
        shutil.rmtree(path / name, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    (path / DEMO_MARKER).write_text("Made by `conveyor demo`; rerunning it resets this folder.\n")
    if not (path / "conveyor.toml").exists():
        (path / "conveyor.toml").write_text("[conveyor]\n")
    # The demo's own stores, whatever CONVEYOR_* variables the shell has.
    settings = load_settings(root=path, env={})
    try:
        return _loop(settings, path, seed)
    except Exception as exc:
        common.fail(f"The demo stopped: {exc}")


def _loop(settings: Settings, path: Path, seed: int) -> int:
    from rich.rule import Rule

    from conveyor.data.datasets import register_dataset
    from conveyor.execution.orchestrator import run_pipeline
    from conveyor.monitoring.fresh import dataset_from_predictions
    from conveyor.monitoring.generator import ChurnGenerator
    from conveyor.monitoring.monitor import Monitor
    from conveyor.registry.registry import get_registry
    from conveyor.stores.artifacts import open_artifact_store
    from conveyor.stores.metadata import open_metadata_store
    from conveyor.triggers.scheduler import Scheduler
    from conveyor.triggers.state import list_events

    console = common.console()
    began = time.perf_counter()
    store = open_metadata_store(settings.db_url)
    artifacts = open_artifact_store(settings.artifact_url)
    registry = get_registry(store, artifacts)
    generator = ChurnGenerator(seed=seed)  # the same data on every run of a seed
    reports_dir = path / "reports"
    reports_dir.mkdir(exist_ok=True)
    retrain = make_retrain()
    checks: dict[str, bool] = {}

    def say(text: str) -> None:
        console.print(f"[dim]{time.perf_counter() - began:5.1f}s[/] {text}", highlight=False)

    console.print(Rule("conveyor demo: the closed loop"))
    say(f"stores: {settings.db_url} and {settings.artifact_url}")

    initial = register_dataset(
        TRAIN_DATA,
        generator.batch(ROWS_TRAIN, drift=0.0, index=0),
        metadata_store=store,
        artifact_store=artifacts,
    )
    run = run_pipeline(retrain, {"data": TRAIN_DATA}, settings=settings, trigger={"kind": "manual"})
    first = run.output()
    say(
        f"[bold]1. train[/] run {run.id} on dataset {initial.ref}: {MODEL}/{first['version']} "
        f"roc_auc "
        f"{first['candidate_roc_auc']:.3f}, promoted to {MODEL}@{ALIAS}: {first['promoted']}"
    )

    monitor = Monitor(
        MONITOR, f"{MODEL}@{ALIAS}", window="1h", metadata_store=store, artifact_store=artifacts
    )
    monitor.save()
    scheduler = Scheduler([retrain], settings=settings, lease="demo")
    scheduler.tick()  # registers the drift trigger's state

    starts: dict[int, float] = {}

    def window(index: int, drift: float, label: str) -> Any:
        batch = generator.batch(ROWS_WINDOW, drift=drift, index=index)
        start = starts[index] = time.time()
        versions = send(url, batch, f"w{index}")
        app.predlog.flush()
        end = time.time() + 1e-3
        monitor.add_labels(labels_for(batch, f"w{index}"))
        reports = monitor.run_window(start, end)
        report = reports[-1]
        target = reports_dir / f"window{index}-{MODEL}-v{report.model_version}.html"
        target.write_text(report.to_html())
        auc = report.performance.get("roc_auc", float("nan"))
        drifted = ", ".join(report.drift.drifted) or "none"
        colour = "red" if report.drift_share >= 0.3 else "green"
        say(
            f"[bold]{label}[/] {ROWS_WINDOW} rows sent in "
            f"{-(-ROWS_WINDOW // REQUEST_ROWS)} requests, answered by version(s) "
            f"{', '.join(versions)}; report vs {MODEL}/{report.model_version}: "
            f"[{colour}]drift share {report.drift_share:.0%}[/] (drifted: {drifted}); "
            f"roc_auc on {report.labeled_rows} labels {auc:.3f} -> {target.name}"
        )
        for issue in report.quality[:3]:
            say(f"   quality: {issue['column']}: {issue['message']}")
        return report

    with serving(settings) as (url, app):
        say(f"[bold]2. serve[/] {MODEL}@{ALIAS} on {url} (real uvicorn, prediction log on)")
        calm = window(1, 0.0, "3. window 1, normal traffic:")
        checks["normal window not drifted"] = calm.drift_share < 0.3
        shifted = window(2, 1.0, "4. window 2, drifted traffic:")
        checks["drift detected"] = shifted.drift_share >= 0.3

        fresh = dataset_from_predictions(
            monitor,
            labeled=True,
            since=starts[2],
            name=FRESH_DATA,
            metadata_store=store,
            artifact_store=artifacts,
        )
        windows = (fresh.origin or {}).get("windows", [])
        say(
            f"[bold]5. fresh data[/] {fresh.ref}: {fresh.row_count} labeled predictions of "
            f"window 2 (report {windows[0]['report_id'] if windows else '-'}); CLI: "
            f"conveyor datasets from-predictions {MONITOR} --labeled --since ..."
        )
        checks["fresh data from labeled predictions"] = bool(windows) and (
            windows[0]["report_id"] == shifted.id and fresh.row_count == ROWS_WINDOW
        )
        fired = scheduler.tick()
        for item in fired:
            say(f"[bold]6. trigger[/] {item.status}: {item.reason}")
        checks["trigger fired"] = any(f.status == "fired" for f in fired)
        scheduler.wait_for_runs(120)
        event = list_events(store.engine, limit=1)[0]
        checks["retraining completed"] = event["status"] == "completed"
        retrained = store.get_run(event["run_id"])
        outcome = run_output(settings, event["run_id"])
        say(
            f"[bold]7. retrain + gate[/] run {retrained['id']} ({retrained['status']}) on "
            f"{fresh.ref}: candidate {MODEL}/{outcome['version']} roc_auc "
            f"{outcome['candidate_roc_auc']:.3f} vs champion "
            f"{outcome['champion_roc_auc']:.3f} on the same {outcome['rows']} holdout rows -> "
            + ("[green]promoted[/]" if outcome["promoted"] else "[red]not promoted[/]")
            + (f" ({'; '.join(outcome['reasons'])})" if outcome["reasons"] else "")
        )
        checks["candidate promoted"] = bool(outcome["promoted"])
        checks["champion scored on the candidate's holdout"] = (
            outcome["champion_basis"] == "holdout"
        )
        holder = registry.resolve(f"{MODEL}@{ALIAS}")
        deadline = time.monotonic() + 30
        while app.servable is None or app.servable.version != str(holder.version):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        reloaded = app.servable is not None and app.servable.version == str(holder.version)
        checks["server hot-reloaded"] = reloaded
        say(f"[bold]8. hot reload[/] the server now answers with {MODEL}/{holder.version}")

        after = window(4, 1.0, "9. window 3, same drifted traffic:")
        checks["next window monitored against the new version"] = (
            after.model_version == holder.version
        )
        checks["no drift against the new version"] = after.drift_share < 0.3

    console.print(Rule("lineage"))
    say(
        f"{MODEL}/{holder.version} <- run {retrained['id']} <- trigger event {event['id']} "
        f"({event['kind']}) <- monitor report {event['report_id']} "
        f"(window 2, {MODEL}/{shifted.model_version})"
    )
    graph = registry.lineage(f"{MODEL}/{holder.version}")
    read = [d for d in graph["data"] if d.get("dataset") == fresh.ref]
    say(
        f"{MODEL}/{holder.version} <- run {retrained['id']} <- dataset {fresh.ref} <- "
        f"{fresh.row_count} labeled predictions of window 2 <- monitor report {shifted.id}"
    )
    checks["lineage links run, trigger and report"] = (
        retrained["trigger"]["event_id"] == event["id"]
        and event["report_id"] == shifted.id
        and holder.run_id == retrained["id"]
        and (graph["trigger"] or {}).get("event_id") == event["id"]
    )
    checks["lineage links the model to the windows it was trained on"] = bool(read) and (
        read[0].get("origin", {}).get("windows", [{}])[0].get("report_id") == shifted.id
    )
    for name, ok in checks.items():
        console.print(f"  {'[green]ok[/]' if ok else '[red]FAILED[/]'}  {name}")
    say(
        f"HTML reports in {reports_dir}; inspect: cd {path} && conveyor models lineage "
        f"{MODEL}/{holder.version}"
    )
    return 0 if all(checks.values()) else 1


def run_output(settings: Settings, run_id: str) -> dict[str, Any]:
    from conveyor.execution.run import Run

    run = Run.get(run_id, db_url=settings.db_url, artifact_url=settings.artifact_url)
    value = run.output()
    return dict(value)

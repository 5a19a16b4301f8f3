"""Triggers and the scheduler against a real metadata store, driven by an explicit clock."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
import sqlalchemy as sa

from conveyor import pipeline, step
from conveyor.config import Settings
from conveyor.exceptions import ConfigError
from conveyor.stores.metadata import open_metadata_store
from conveyor.stores.metadata import tables_data as td
from conveyor.stores.metadata import tables_monitoring as tm
from conveyor.triggers import list_events, on_decay, on_drift, on_new_data, on_schedule
from conveyor.triggers.scheduler import Scheduler
from conveyor.triggers.specs import triggers_of


def utc(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()  # type: ignore[misc]


@step
def one() -> int:
    return 1


class Recorder:
    """Launcher that records what the scheduler starts (the run itself is not the subject)."""

    def __init__(self) -> None:
        self.calls: list[Mapping[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, pipe: Any, params: Mapping[str, Any], trigger: Mapping[str, Any]) -> None:
        with self.lock:
            self.calls.append(dict(trigger))


def make(settings: Settings, *pipelines: Any, **kwargs: Any) -> tuple[Scheduler, Recorder]:
    recorder = kwargs.pop("launcher", None) or Recorder()
    scheduler = Scheduler(list(pipelines), settings=settings, launcher=recorder, **kwargs)
    return scheduler, recorder


def fired(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["status"] in ("fired", "completed", "failed")]


# ---------------------------------------------------------------------------- schedules
def test_cron_fires_once_per_tick_and_a_restart_does_not_fire_again(settings: Settings) -> None:
    @pipeline(schedule="0 3 * * *")
    def nightly() -> int:
        return one()

    first, recorder = make(settings, nightly)
    assert first.tick(utc(2026, 1, 1, 2, 59)) == []  # registration: nothing retroactive
    out = first.tick(utc(2026, 1, 1, 3, 0, 5))
    assert [f.status for f in out] == ["fired"]
    assert first.tick(utc(2026, 1, 1, 3, 0, 30)) == []
    first.wait_for_runs(10)
    first.close(1)

    restarted, recorder2 = make(settings, nightly)
    assert restarted.tick(utc(2026, 1, 1, 3, 1)) == []
    assert [f.status for f in restarted.tick(utc(2026, 1, 2, 3, 0, 1))] == ["fired"]
    restarted.wait_for_runs(10)
    assert len(recorder.calls) == 1 and len(recorder2.calls) == 1
    assert recorder.calls[0]["dedup_key"] == "tick:2026-01-01T03:00:00+00:00"
    assert recorder.calls[0]["details"]["late"] is False


@pytest.mark.parametrize(("policy", "expected"), [("latest", 1), ("all", 3), ("skip", 0)])
def test_missed_ticks_follow_the_catch_up_policy(
    settings: Settings, policy: str, expected: int
) -> None:
    @pipeline(triggers=[on_schedule("0 3 * * *", catch_up=policy)])  # type: ignore[arg-type]
    def nightly() -> int:
        return one()

    scheduler, recorder = make(settings, nightly)
    scheduler.tick(utc(2026, 1, 1, 12, 0))
    scheduler.close(1)
    # Down for three nights; the next scheduler starts at noon on the fourth day.
    later, recorder = make(settings, nightly)
    out = later.tick(utc(2026, 1, 4, 12, 0))
    later.wait_for_runs(10)
    assert len([f for f in out if f.status == "fired"]) == expected
    assert all(call["details"]["late"] for call in recorder.calls)
    assert later.tick(utc(2026, 1, 4, 12, 1)) == []


def test_invalid_trigger_parameters_are_refused_with_the_expected_form() -> None:
    with pytest.raises(ConfigError, match="cron expression"):
        on_schedule("every day")
    with pytest.raises(ConfigError, match="'share' parameter of on_drift must be in"):
        on_drift("m", share=2.0)
    with pytest.raises(ConfigError, match="'drop' parameter of on_decay must be > 0"):
        on_decay("m", "roc_auc", 0)

    @pipeline(triggers=[object()])
    def odd() -> int:
        return one()

    with pytest.raises(ConfigError, match="Use on_schedule, on_new_data, on_drift or on_decay"):
        triggers_of(odd)


# ---------------------------------------------------------------------------- reports
def add_monitor(engine: sa.Engine, name: str = "churn-prod") -> str:
    with engine.begin() as c:
        c.execute(
            tm.monitors.insert(),
            [
                {
                    "id": f"M{name}"[:26],
                    "name": name,
                    "model_ref": "churn@production",
                    "window_seconds": 3600.0,
                    "options": {},
                    "created_at": 0.0,
                    "updated_at": 0.0,
                }
            ],
        )
    return f"M{name}"[:26]


def add_report(
    engine: sa.Engine,
    monitor_id: str,
    n: int,
    *,
    share: float,
    created: float,
    metrics: dict[str, float] | None = None,
    labeled: int = 0,
    baseline: dict[str, float] | None = None,
    scores: dict[str, float] | None = None,
) -> str:
    report_id = f"R{n:025d}"
    features = [{"name": k, "score": v} for k, v in (scores or {}).items()]
    with engine.begin() as c:
        c.execute(
            tm.monitor_reports.insert(),
            [
                {
                    "id": report_id,
                    "monitor_id": monitor_id,
                    "window_start": n * 3600.0,
                    "window_end": (n + 1) * 3600.0,
                    "model_name": "churn",
                    "model_version": 1,
                    "rows": 1000,
                    "labeled_rows": labeled,
                    "drift_share": share,
                    "dataset_drift": share >= 0.5,
                    "drifted": ["a"] if share else [],
                    "metrics": metrics or {},
                    "report": {
                        "drift": {"features": features},
                        "reference_metrics": baseline or {},
                    },
                    "created_at": created,
                }
            ],
        )
    return report_id


def test_drift_fires_once_per_incident_with_cooldown_and_dedup(settings: Settings) -> None:
    @pipeline(triggers=[on_drift("churn-prod", share=0.3, cooldown=3600)])
    def retrain() -> int:
        return one()

    engine = open_metadata_store(settings.db_url).engine
    monitor = add_monitor(engine)
    scheduler, recorder = make(settings, retrain, lease=None)
    t0 = 1_000_000.0
    add_report(engine, monitor, 1, share=0.1, created=t0)
    assert scheduler.tick(t0 + 1) == []
    first = add_report(engine, monitor, 2, share=0.4, created=t0 + 10)
    out = scheduler.tick(t0 + 11)
    assert [(f.status, f.report_id) for f in out] == [("fired", first)]
    scheduler.wait_for_runs(10)
    assert scheduler.tick(t0 + 12) == []  # the same report is never decided twice
    add_report(engine, monitor, 3, share=0.6, created=t0 + 20)
    assert [f.status for f in scheduler.tick(t0 + 21)] == ["suppressed"]
    add_report(engine, monitor, 4, share=0.5, created=t0 + 4000)
    assert [f.status for f in scheduler.tick(t0 + 4001)] == ["fired"]
    scheduler.wait_for_runs(10)
    assert len(recorder.calls) == 2
    assert recorder.calls[0]["report_id"] == first
    assert "drift share 40% >= 30%" in recorder.calls[0]["reason"]
    events = list_events(engine)
    assert [e["status"] for e in events] == ["completed", "suppressed", "completed"]
    assert "cooldown" in events[1]["reason"]


def test_per_feature_threshold_and_decay_triggers(settings: Settings) -> None:
    @pipeline(
        triggers=[
            on_drift("churn-prod", features={"income": 0.2}, cooldown=0),
            on_decay("churn-prod", "roc_auc", drop=0.05, cooldown=0, min_rows=50),
        ]
    )
    def retrain() -> int:
        return one()

    engine = open_metadata_store(settings.db_url).engine
    monitor = add_monitor(engine)
    scheduler, recorder = make(settings, retrain, lease=None)
    t0 = 2_000_000.0
    add_report(engine, monitor, 1, share=0.0, created=t0, scores={"income": 0.1})
    scheduler.tick(t0 + 1)
    add_report(
        engine,
        monitor,
        2,
        share=0.04,
        created=t0 + 10,
        scores={"income": 0.25},
        metrics={"roc_auc": 0.80},
        labeled=40,  # too few labels for the decay trigger
        baseline={"roc_auc": 0.86},
    )
    out = scheduler.tick(t0 + 11)
    scheduler.wait_for_runs(10)
    assert [f.kind for f in out] == ["drift"]
    add_report(
        engine,
        monitor,
        3,
        share=0.0,
        created=t0 + 20,
        metrics={"roc_auc": 0.79},
        labeled=500,
        baseline={"roc_auc": 0.86},
    )
    out = scheduler.tick(t0 + 21)
    scheduler.wait_for_runs(10)
    assert [f.kind for f in out] == ["decay"]
    assert "roc_auc 0.7900 is 0.0700 worse than 0.8600" in recorder.calls[-1]["reason"]
    from conveyor.stores.metadata.events import list_events as event_log

    (decay,) = event_log(engine, kinds=["decay"])
    assert decay.subject == "churn-prod" and "0.0700 worse" in decay.summary


def test_new_data_accumulates_rows_until_min_rows(settings: Settings) -> None:
    @pipeline(triggers=[on_new_data("customers", min_rows=10_000)])
    def retrain() -> int:
        return one()

    engine = open_metadata_store(settings.db_url).engine
    with engine.begin() as c:
        c.execute(td.datasets.insert(), [{"id": "D1", "name": "customers", "created_at": 0.0}])

    def version(n: int, rows: int) -> None:
        with engine.begin() as c:
            c.execute(
                td.dataset_versions.insert(),
                [
                    {
                        "id": f"V{n}",
                        "dataset_id": "D1",
                        "version": n,
                        "fingerprint": f"f{n}",
                        "source": "x",
                        "source_kind": "frame",
                        "row_count": rows,
                        "columns": [],
                        "profile_hash": "0" * 64,
                        "created_at": float(n),
                    }
                ],
            )

    version(1, 50_000)  # existed before the scheduler: not new
    scheduler, recorder = make(settings, retrain)
    assert scheduler.tick(100.0) == []
    version(2, 6_000)
    assert scheduler.tick(101.0) == []
    version(3, 5_000)
    out = scheduler.tick(102.0)
    scheduler.wait_for_runs(10)
    assert [f.status for f in out] == ["fired"]
    assert recorder.calls[0]["details"] == {
        "dataset": "customers",
        "versions": [2, 3],
        "rows": 11_000,
    }
    assert scheduler.tick(103.0) == []


def test_no_new_run_while_the_previous_one_is_still_running(settings: Settings) -> None:
    release = threading.Event()
    started = threading.Event()

    def slow(pipe: Any, params: Mapping[str, Any], trigger: Mapping[str, Any]) -> None:
        started.set()
        assert release.wait(10)

    @pipeline(triggers=[on_drift("churn-prod", share=0.3, cooldown=0)])
    def retrain() -> int:
        return one()

    engine = open_metadata_store(settings.db_url).engine
    monitor = add_monitor(engine)
    scheduler, _ = make(settings, retrain, launcher=slow)
    add_report(engine, monitor, 1, share=0.9, created=10.0)
    assert [f.status for f in scheduler.tick(11.0)] == ["fired"]
    assert started.wait(10)
    add_report(engine, monitor, 2, share=0.9, created=20.0)
    assert scheduler.tick(21.0) == []  # the running retraining covers this incident
    release.set()
    assert scheduler.wait_for_runs(10)
    assert [f.status for f in scheduler.tick(22.0)] == ["fired"]
    release.set()
    scheduler.wait_for_runs(10)


def test_a_real_run_records_its_trigger_and_the_event_its_run(settings: Settings) -> None:
    @pipeline(schedule="*/5 * * * *")
    def every5() -> int:
        return one()

    scheduler = Scheduler([every5], settings=settings)
    now = time.time()
    scheduler.tick(now - 600)
    out = scheduler.tick(now)
    assert [f.status for f in out] == ["fired"]
    assert scheduler.wait_for_runs(60)
    store = open_metadata_store(settings.db_url)
    event = list_events(store.engine)[0]
    assert event["status"] == "completed"
    run = store.get_run(event["run_id"])
    assert run["status"] == "completed"
    assert run["trigger"]["event_id"] == event["id"]
    assert run["trigger"]["kind"] == "schedule"
    scheduler.close(1)


# ---------------------------------------------------------------------------- races
def race(settings: Settings, *, lease: str | None, ticks: int = 6) -> tuple[int, int]:
    @pipeline(triggers=[on_drift("churn-prod", share=0.3, cooldown=3600)])
    def retrain() -> int:
        return one()

    @pipeline(schedule="0 3 * * *")
    def nightly() -> int:
        return one()

    engine = open_metadata_store(settings.db_url).engine
    monitor = add_monitor(engine)
    recorder = Recorder()
    schedulers = [
        Scheduler([retrain, nightly], settings=settings, launcher=recorder, lease=lease)
        for _ in range(2)
    ]
    base = utc(2026, 1, 1, 2, 0)
    for s in schedulers:
        s.tick(base)
    for n in range(ticks):
        add_report(engine, monitor, n, share=0.9, created=base + 10 + n)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def go(s: Scheduler) -> None:
        try:
            for i in range(ticks):
                barrier.wait(10)
                s.tick(utc(2026, 1, 1, 3, 0, i))
            s.wait_for_runs(10)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    kinds = [c["kind"] for c in recorder.calls]
    return kinds.count("drift"), kinds.count("schedule")


@pytest.mark.parametrize("lease", [None, "default"])
def test_two_schedulers_never_fire_the_same_trigger_twice_sqlite(
    settings: Settings, lease: str | None
) -> None:
    assert race(settings, lease=lease) == (1, 1)


@pytest.mark.postgres
@pytest.mark.parametrize("lease", [None, "default"])
def test_two_schedulers_never_fire_the_same_trigger_twice_postgres(
    tmp_path: Any, postgres_url: str, lease: str | None
) -> None:
    from tests.conftest import make_settings

    assert race(make_settings(tmp_path, postgres_url), lease=lease) == (1, 1)


def test_standby_scheduler_takes_over_when_the_lease_expires(settings: Settings) -> None:
    @pipeline(schedule="0 3 * * *")
    def nightly() -> int:
        return one()

    a, _ = make(settings, nightly, lease_ttl=60)
    b, _ = make(settings, nightly, lease_ttl=60)
    a.tick(1000.0)
    assert a.active
    b.tick(1001.0)
    assert not b.active
    b.tick(1061.0)  # a stopped renewing
    assert b.active

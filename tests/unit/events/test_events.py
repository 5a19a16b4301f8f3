"""The event log and webhook delivery: recorded with the change, delivered at least once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from conveyor import pipeline, step
from conveyor.cli.main import app
from conveyor.config import Settings, load_settings
from conveyor.events import Deliverer, events, load_targets, verify_signature
from conveyor.events.delivery import DEAD, DELIVERED, pending_count
from conveyor.exceptions import ConfigError
from conveyor.execution.orchestrator import run_pipeline
from conveyor.registry import Registry
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.stores.metadata import tables_events as te
from conveyor.stores.metadata.events import deliveries, emit, list_events
from conveyor.training.model import Model
from tests.unit.events.receiver import run_receiver

runner = CliRunner()


@step
def double(x: int) -> int:
    return 2 * x


@step
def explode(x: int) -> int:
    raise RuntimeError(f"boom {x}")


@pipeline
def good(x: int = 1):
    return double(x)


@pipeline
def bad(x: int = 1):
    return explode(double(x))


@pytest.fixture(scope="module")
def fitted() -> Model:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :4]
    return Model.from_fitted(LogisticRegression(max_iter=500).fit(X, y), X, profile=False)


def _registry(settings: Settings) -> Registry:
    return Registry(
        open_metadata_store(settings.db_url), open_artifact_store(settings.artifact_url)
    )


def _engine(settings: Settings) -> sa.Engine:
    return open_metadata_store(settings.db_url).engine


def test_runs_record_started_finished_failed_and_the_failed_step(settings: Settings) -> None:
    ok = run_pipeline(good, {"x": 2}, settings=settings, executor="inline")
    failed = run_pipeline(bad, {}, settings=settings, executor="inline", raise_on_failure=False)
    log = list(reversed(list_events(_engine(settings))))
    kinds = [(e.kind, e.links.get("run_id")) for e in log]
    assert kinds == [
        ("run_started", ok.id),
        ("run_finished", ok.id),
        ("run_started", failed.id),
        ("step_failed", failed.id),
        ("run_failed", failed.id),
    ]
    step_failed = log[3]
    assert step_failed.subject == "bad"
    assert "boom 2" in step_failed.summary
    assert step_failed.data["step"] == "explode"
    assert "completed" in log[1].summary


def test_registry_records_registration_moves_rollback_and_gates(
    settings: Settings, fitted: Model
) -> None:
    registry = _registry(settings)
    registry.register(fitted, "churn", promote_to="production")
    registry.register(fitted, "churn")
    registry.promote("churn", 2, "production", reason="better auc", actor="ana")
    registry.rollback("churn", "production", actor="ben")
    registry.record_gate(
        {"passed": False, "primary": "auc", "model_name": "churn", "reasons": ["auc -0.02"]}
    )
    log = list(reversed(list_events(_engine(settings))))
    assert [e.kind for e in log] == [
        "model_registered",
        "alias_moved",
        "model_registered",
        "alias_moved",
        "rollback",
        "gate_refused",
    ]
    moved = log[3]
    assert moved.subject == "churn@production"
    assert moved.links["model_version"] == "churn/2"
    assert moved.data == {"from_version": 1, "to_version": 2, "actor": "ana"}
    assert "better auc" in moved.summary
    assert log[4].data["to_version"] == 1
    assert "auc -0.02" in log[5].summary
    # Filters: kind, exact subject, prefix subject, keyset pages.
    engine = _engine(settings)
    assert [e.kind for e in list_events(engine, kinds=["rollback"])] == ["rollback"]
    assert len(list_events(engine, subject="churn@production")) == 3
    assert len(list_events(engine, subject="churn@*")) == 3
    first = list_events(engine, limit=2)
    older = list_events(engine, limit=10, before=first[-1].seq)
    assert [e.seq for e in first + older] == sorted((e.seq for e in log), reverse=True)


def _target_toml(url: str, **extra: object) -> dict[str, object]:
    return {"notify": [{"url": url, **extra}]}


def test_delivery_is_signed_and_carries_the_event_id(settings: Settings) -> None:
    engine = _engine(settings)
    with run_receiver() as receiver:
        targets = load_targets(
            _target_toml(receiver.url, kinds=["alias_moved"], secret_env="HOOK_SECRET")
        )
        with Deliverer(engine, targets, env={"HOOK_SECRET": "s3cret"}) as deliverer:
            deliverer.register_targets()
            emit(engine, "alias_moved", "churn@production", "moved", links={"run_id": "R1"})
            emit(engine, "run_failed", "train", "not wanted by this target")
            result = deliverer.drain(timeout=10)
        assert (result.delivered, result.failed, result.dead) == (1, 0, 0)
        (request,) = receiver.received
    body = request.body
    assert request.json["kind"] == "alias_moved"
    assert request.json["links"] == {"run_id": "R1"}
    assert request.headers["conveyor-event-id"] == request.json["id"]
    signature = request.headers["conveyor-signature"]
    assert verify_signature("s3cret", body, signature)
    assert not verify_signature("other", body, signature)
    assert not verify_signature("s3cret", body + b" ", signature)
    assert not verify_signature("s3cret", body, signature, now=time.time() + 3600)
    # The secret is nowhere in the store.
    with engine.connect() as c:
        for table in (te.events, te.event_deliveries, te.notify_targets):
            assert "s3cret" not in json.dumps([list(r) for r in c.execute(sa.select(table))])


def test_slack_format_is_a_text_message(settings: Settings) -> None:
    engine = _engine(settings)
    with run_receiver() as receiver:
        targets = load_targets(_target_toml(receiver.url, format="slack"))
        with Deliverer(engine, targets) as deliverer:
            deliverer.register_targets()
            emit(engine, "drift", "churn-prod", "3 of 9 features drifted", links={"report": "X"})
            deliverer.drain(timeout=10)
        (request,) = receiver.received
    assert set(request.json) == {"text"}
    assert "*drift* · churn-prod" in request.json["text"]
    assert "3 of 9 features drifted" in request.json["text"]


def test_a_failing_receiver_is_retried_with_backoff_until_it_recovers(settings: Settings) -> None:
    engine = _engine(settings)
    now = [1_000_000.0]
    with run_receiver(codes=[500, 503]) as receiver:
        targets = load_targets(_target_toml(receiver.url))
        with Deliverer(engine, targets, clock=lambda: now[0]) as deliverer:
            deliverer.register_targets()
            emit(engine, "run_failed", "train", "boom")
            first = deliverer.drain_once()
            assert (first.delivered, first.failed) == (0, 1)
            assert "HTTP 500" in first.errors[0]
            # Not due yet: the backoff holds it back.
            assert deliverer.drain_once().attempted == 0
            now[0] += 1.0
            assert deliverer.drain_once().failed == 1
            now[0] += 1.5
            assert deliverer.drain_once().attempted == 0
            now[0] += 0.6
            assert deliverer.drain_once().delivered == 1
            assert deliverer.drain_once().attempted == 0
    (row,) = deliveries(engine)
    assert (row["status"], row["attempts"], row["last_code"]) == (DELIVERED, 3, 200)
    assert len(receiver.received) == 3
    assert len(set(receiver.ids())) == 1


def test_a_final_rejection_or_too_many_attempts_gives_up(settings: Settings) -> None:
    engine = _engine(settings)
    now = [0.0]
    with run_receiver(codes=[400, 500, 500]) as receiver:
        targets = load_targets(_target_toml(receiver.url, max_attempts=2))
        with Deliverer(engine, targets, clock=lambda: now[0]) as deliverer:
            deliverer.register_targets()
            emit(engine, "run_failed", "a", "rejected for good")
            assert deliverer.drain_once().dead == 1
            emit(engine, "run_failed", "b", "fails twice")
            assert deliverer.drain_once().failed == 1
            now[0] += 10
            assert deliverer.drain_once().dead == 1
            assert pending_count(engine, targets[0]) == 0
    statuses = sorted(r["status"] for r in deliveries(engine))
    assert statuses == [DEAD, DEAD]
    assert len(receiver.received) == 3


def test_a_new_target_gets_events_from_now_on_not_the_history(settings: Settings) -> None:
    engine = _engine(settings)
    emit(engine, "run_failed", "old", "before the target existed")
    with run_receiver() as receiver:
        targets = load_targets(_target_toml(receiver.url))
        with Deliverer(engine, targets) as deliverer:
            deliverer.register_targets()
            emit(engine, "run_failed", "new", "after")
            assert deliverer.drain(timeout=10).delivered == 1
        assert [r.json["subject"] for r in receiver.received] == ["new"]


def test_a_missing_secret_sends_nothing_unsigned(settings: Settings) -> None:
    engine = _engine(settings)
    with run_receiver() as receiver:
        targets = load_targets(_target_toml(receiver.url, secret_env="NOT_SET_ANYWHERE"))
        with Deliverer(engine, targets, env={}) as deliverer:
            deliverer.register_targets()
            emit(engine, "run_failed", "x", "y")
            result = deliverer.drain(timeout=5)
        assert receiver.received == []
    assert "NOT_SET_ANYWHERE is not set" in result.errors[0]
    assert pending_count(engine, targets[0]) == 1


def test_target_config_errors_name_the_problem() -> None:
    cases = [
        ({"notify": [{"kinds": ["drift"]}]}, "needs url"),
        ({"notify": [{"url": "ftp://x/y"}]}, "needs url"),
        ({"notify": [{"url": "http://x", "kinds": ["drfit"]}]}, "did you mean 'drift'"),
        ({"notify": [{"url": "http://x", "format": "teams"}]}, "format must be one of"),
        ({"notify": [{"url": "http://x", "secret_env": "a secret!"}]}, "never in conveyor.toml"),
        ({"notify": [{"url": "http://x", "urll": 1}]}, "Unknown key 'urll'"),
        ({"notify": [{"url": "http://x", "max_attempts": 0}]}, "max_attempts"),
        ({"notify": [{"url": "http://x"}, {"url": "http://x"}]}, "Two [[notify]] targets"),
        ({"notify": 5}, "[[notify]] tables"),
    ]
    for extra, message in cases:
        with pytest.raises(ConfigError) as info:
            load_targets(extra)
        assert message.lower() in str(info.value).lower(), (extra, str(info.value))


def test_ten_thousand_queued_deliveries_drain(settings: Settings) -> None:
    engine = _engine(settings)
    with run_receiver() as receiver:
        targets = load_targets(_target_toml(receiver.url))
        with Deliverer(engine, targets) as deliverer:
            deliverer.register_targets()
            with engine.begin() as c:
                from conveyor.stores.metadata.events import record_event

                for i in range(2_000):
                    record_event(c, "run_finished", f"p{i % 7}", f"run {i}")
            result = deliverer.drain(timeout=120)
        assert result.delivered == 2_000
        assert len(set(receiver.ids())) == 2_000
    assert pending_count(engine, targets[0]) == 0


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVEYOR_DB_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_ARTIFACT_URL", raising=False)
    return tmp_path


def _write_toml(root: Path, url: str) -> None:
    (root / "conveyor.toml").write_text(
        f'[conveyor]\nexecutor = "inline"\n\n[[notify]]\nurl = "{url}"\nname = "hook"\n'
    )


def test_cli_lists_filters_and_prints_json(project: Path) -> None:
    (project / "conveyor.toml").write_text("[conveyor]\n")
    engine = open_metadata_store(load_settings().db_url).engine
    emit(engine, "alias_moved", "churn@production", "moved to 2")
    emit(engine, "run_failed", "train", "boom")
    result = runner.invoke(app, ["events", "--kind", "alias_moved", "--json"])
    assert result.exit_code == 0, result.output
    (line,) = result.output.strip().splitlines()
    assert json.loads(line)["subject"] == "churn@production"
    result = runner.invoke(app, ["events"])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert "alias_moved" in lines[0] and "run_failed" in lines[1]
    result = runner.invoke(app, ["events", "--kind", "alias_movd"])
    assert result.exit_code == 1
    assert "Did you mean 'alias_moved'" in result.output


def test_cli_deliver_without_targets_fails_clearly(project: Path) -> None:
    (project / "conveyor.toml").write_text("[conveyor]\n")
    result = runner.invoke(app, ["events", "deliver"])
    assert result.exit_code == 1
    assert "No [[notify]] targets" in result.output


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_kill_9_mid_delivery_loses_nothing(project: Path) -> None:
    hold = threading.Event()
    with run_receiver(hold=hold) as receiver:
        _write_toml(project, receiver.url)
        settings = load_settings()
        engine = open_metadata_store(settings.db_url).engine
        Deliverer(engine, load_targets(settings.extra)).register_targets()
        emit(engine, "gate_refused", "churn", "the candidate lost")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
        process = subprocess.Popen(
            [sys.executable, "-m", "conveyor.cli.main", "events", "deliver", "--follow"],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert receiver.arrived.wait(60), "the deliverer never sent the event"
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        finally:
            if process.poll() is None:
                process.kill()
        assert _process_gone(process.pid)
        hold.set()
        (row,) = list_events(engine, kinds=["gate_refused"])
        assert deliveries(engine) == []  # nothing was recorded as delivered
        result = runner.invoke(app, ["events", "deliver", "--timeout", "20"])
        assert result.exit_code == 0, result.output
        assert "Delivered 1" in result.output
    assert receiver.ids() == [row.id, row.id]
    (delivery,) = deliveries(engine)
    assert delivery["status"] == DELIVERED
    log = runner.invoke(app, ["events", "deliveries"])
    assert "hook  gate_refused" in log.output and "delivered after 1 attempt" in log.output


def test_python_api_reads_the_log(settings: Settings) -> None:
    run_pipeline(good, {}, settings=settings, executor="inline")
    found = events(kinds=["run_finished"], settings=settings)
    assert [e.kind for e in found] == ["run_finished"]
    with pytest.raises(ValueError, match="Unknown event kind 'nope'"):
        events(kinds=["nope"], settings=settings)

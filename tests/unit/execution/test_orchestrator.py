"""Running plans: outputs, caching, resume, failures, retries, timeouts, logs, tracking."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from conveyor import pipeline, step
from conveyor.config import Settings
from conveyor.exceptions import (
    ArtifactCorruptError,
    MaterializerError,
    RunFailedError,
    StepFailedError,
    StepTimeoutError,
)
from conveyor.execution.orchestrator import run_pipeline
from conveyor.stores.metadata import open_metadata_store

from . import steps_for_tests as s


def statuses(run) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {row["name"]: row["status"] for row in run.steps()}


def cache_hits(run) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    return {row["name"]: bool(row["cache_hit"]) for row in run.steps()}


def test_run_outputs_load_back_as_python_objects(settings: Settings) -> None:
    run = run_pipeline(s.diamond, {"n": 5}, settings=settings)
    assert run.status == "completed"
    assert run.output("sum") == 16
    assert run.params == {"n": 5}
    assert statuses(run) == dict.fromkeys(["source", "inc", "double", "add"], "completed")


def test_pipeline_run_method_uses_configured_settings(settings: Settings) -> None:
    run = s.diamond.configure(settings=settings).run(n=2)
    assert run.output("sum") == 7


def test_second_run_is_fully_cached_and_names_its_source(settings: Settings) -> None:
    first = run_pipeline(s.diamond, {"n": 3}, settings=settings)
    second = run_pipeline(s.diamond, {"n": 3}, settings=settings)
    assert second.output("sum") == first.output("sum") == 10
    assert all(cache_hits(second).values())
    sources = {row["name"]: row["cache_source"] for row in second.steps()}
    originals = {row["name"]: row["id"] for row in first.steps()}
    assert sources == originals


def test_changed_param_reruns_only_affected_steps(settings: Settings) -> None:
    @step
    def scale(x: int, factor: int = 1) -> int:
        return x * factor

    @pipeline
    def p(n: int = 1, factor: int = 1):
        base = s.source(n)
        return {"scaled": scale(base, factor=factor), "inc": s.inc(base)}

    run_pipeline(p, {"n": 2, "factor": 3}, settings=settings)
    again = run_pipeline(p, {"n": 2, "factor": 4}, settings=settings)
    assert cache_hits(again) == {"source": True, "inc": True, "scale": False}
    assert again.output("scaled") == 8


def test_no_cache_and_cache_false_steps_always_run(settings: Settings) -> None:
    @pipeline
    def p():
        return s.live(s.source(1))

    run_pipeline(p, settings=settings)
    again = run_pipeline(p, settings=settings)
    assert cache_hits(again) == {"source": True, "live": False}
    forced = run_pipeline(p, settings=settings, cache=False)
    assert cache_hits(forced) == {"source": False, "live": False}


def test_cache_version_invalidates(settings: Settings) -> None:
    @pipeline
    def p(version: str = "a"):
        return s.inc.with_options(cache_version=version)(s.source(1))

    run_pipeline(p, {"version": "a"}, settings=settings)
    again = run_pipeline(p, {"version": "b"}, settings=settings)
    assert cache_hits(again) == {"source": True, "inc": False}


def test_missing_cached_blob_reruns_the_step_instead_of_failing(settings: Settings) -> None:
    first = run_pipeline(s.diamond, {"n": 4}, settings=settings)
    artifact = first.outputs["sum"]
    blob = (
        Path(settings.artifact_url) / "objects" / artifact.content_hash[:2] / artifact.content_hash
    )
    blob.unlink()
    again = run_pipeline(s.diamond, {"n": 4}, settings=settings)
    assert cache_hits(again)["add"] is False
    assert again.output("sum") == 13


def test_corrupt_artifact_is_an_error_naming_it(settings: Settings) -> None:
    run = run_pipeline(s.diamond, {"n": 4}, settings=settings)
    artifact = run.outputs["sum"]
    blob = (
        Path(settings.artifact_url) / "objects" / artifact.content_hash[:2] / artifact.content_hash
    )
    blob.write_bytes(b"999")
    with pytest.raises(ArtifactCorruptError, match=artifact.content_hash):
        run.output("sum")
    blob.unlink()
    with pytest.raises(ArtifactCorruptError, match="missing"):
        run.output("sum")


def test_failure_names_step_and_run_keeps_traceback_and_skips_downstream(
    settings: Settings, tmp_path: Path
) -> None:
    flag = tmp_path / "fail"
    flag.touch()

    @pipeline
    def p():
        bad = s.fail_if_exists(s.source(1), flag=str(flag))
        return {"after_bad": s.inc(bad), "independent": s.double(s.source(7))}

    with pytest.raises(RunFailedError) as info:
        run_pipeline(p, settings=settings)
    error = info.value
    run = error.run
    assert run.status == "failed"
    assert "fail_if_exists" in str(error) and run.id in str(error)
    step_error = error.__cause__
    assert isinstance(step_error, StepFailedError)
    assert step_error.step == "fail_if_exists" and step_error.run_id == run.id
    assert isinstance(step_error.__cause__, ValueError)
    assert "raise ValueError" in step_error.traceback_text
    assert statuses(run) == {
        "source": "completed",
        "source_2": "completed",
        "fail_if_exists": "failed",
        "inc": "skipped",
        "double": "completed",
    }
    failed_row = run.step("fail_if_exists")
    assert "flag file" in failed_row["error"] and "ValueError" in failed_row["traceback"]


def test_rerun_after_failure_resumes_from_cache(settings: Settings, tmp_path: Path) -> None:
    flag = tmp_path / "fail"
    flag.touch()

    @pipeline
    def p():
        return s.inc(s.fail_if_exists(s.double(s.source(1)), flag=str(flag)))

    with pytest.raises(RunFailedError):
        run_pipeline(p, settings=settings)
    flag.unlink()
    resumed = run_pipeline(p, settings=settings)
    assert cache_hits(resumed) == {
        "source": True,
        "double": True,
        "fail_if_exists": False,
        "inc": False,
    }
    assert resumed.output() == 103


def test_retries_until_success_and_records_attempts(settings: Settings, tmp_path: Path) -> None:
    counter = tmp_path / "count"

    @pipeline
    def p():
        return s.flaky(s.source(3), counter=str(counter))

    run = run_pipeline(p, settings=settings)
    assert run.output() == 3
    assert run.step("flaky")["attempts"] == 3
    assert counter.read_text() == "3"


def test_retries_exhausted_fail_the_run(settings: Settings, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    counter.write_text("-10")

    @pipeline
    def p():
        return s.flaky(s.source(3), counter=str(counter))

    with pytest.raises(RunFailedError, match="transient failure"):
        run_pipeline(p, settings=settings)
    assert counter.read_text() == "-7"  # three attempts: 1 + 2 retries


@pytest.mark.parametrize("executor", ["threads", "inline"])
def test_timeout_fails_the_step(settings: Settings, executor: str) -> None:
    @pipeline
    def p():
        return s.slow(s.source(1), seconds=0.6)

    with pytest.raises(RunFailedError) as info:
        run_pipeline(p, settings=settings, executor=executor)
    assert isinstance(info.value.__cause__, StepTimeoutError)
    assert "timed out after 0.3 s" in str(info.value)


def test_dynamic_map_and_reduce(settings: Settings) -> None:
    run = run_pipeline(s.fanout, {"n": 6}, settings=settings)
    assert run.output() == 2 * sum(range(6))
    names = set(statuses(run))
    assert {f"double[{i}]" for i in range(6)} <= names


def test_map_over_a_map_and_empty_fanout(settings: Settings) -> None:
    run = run_pipeline(s.nested_fanout, {"n": 4}, settings=settings)
    assert run.output() == sum(2 * i + 1 for i in range(4))
    empty = run_pipeline(s.fanout, {"n": 0}, settings=settings)
    assert empty.output() == 0


def test_mapped_items_are_cached_individually(settings: Settings) -> None:
    run_pipeline(s.fanout, {"n": 3}, settings=settings)
    bigger = run_pipeline(s.fanout, {"n": 4}, settings=settings)
    hits = cache_hits(bigger)
    # numbers(4) is a new list, so items are keyed by (list hash, index): all re-run...
    assert hits["numbers"] is False
    # ...but an identical run reuses every item.
    again = run_pipeline(s.fanout, {"n": 4}, settings=settings)
    assert all(cache_hits(again).values())
    assert hits["total"] is False


def test_run_outputs_of_a_mapped_step_are_lists(settings: Settings) -> None:
    @pipeline
    def p():
        return {"doubled": s.double.map([1, 2, 3])}

    run = run_pipeline(p, settings=settings)
    assert run.output("doubled") == [2, 4, 6]


def test_multiple_outputs_are_stored_separately(settings: Settings) -> None:
    @pipeline
    def p():
        low, high = s.split(10)
        return {"low": low, "high": high}

    run = run_pipeline(p, settings=settings)
    assert (run.output("low"), run.output("high")) == (9, 11)


def test_logs_are_captured_per_step_even_when_steps_run_concurrently(settings: Settings) -> None:
    @pipeline
    def p():
        return {
            "a": s.chatty(s.source(1), marker="AAA"),
            "b": s.chatty(s.source(2), marker="BBB"),
        }

    run = run_pipeline(p, settings=settings, executor="threads:2")
    first, second = run.logs("chatty"), run.logs("chatty_2")
    assert "stdout AAA" in first and "stderr AAA" in first and "logging AAA" in first
    assert "BBB" not in first
    assert "stdout BBB" in second and "AAA" not in second


def test_logs_are_still_captured_after_something_replaces_the_root_handlers(
    settings: Settings,
) -> None:
    @pipeline
    def p():
        return s.chatty(s.source(1), marker="CCC")

    run_pipeline(p, settings=settings, cache=False)
    root = logging.getLogger()
    saved = root.handlers[:]
    # What a library's logging set-up does: the root logger gets handlers of its own.
    logging.basicConfig(force=True, handlers=[logging.NullHandler()])
    try:
        run = run_pipeline(p, settings=settings, cache=False)
    finally:
        root.handlers[:] = saved
    assert "logging CCC" in run.logs("chatty")


def test_tracking_params_metrics_artifacts_and_tags(settings: Settings) -> None:
    @pipeline
    def p():
        return s.tracked(s.source(10))

    run = run_pipeline(p, settings=settings)
    row = run.step("tracked")
    assert row["params"] == {"lr": 0.1, "layers": 3}
    assert run.metrics() == {"accuracy": 0.6, "loss": pytest.approx(1 / 3)}
    store = open_metadata_store(settings.db_url)
    curve = [(m["step"], m["value"]) for m in store.metrics(run.id) if m["key"] == "loss"]
    assert curve == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert run.record["tags"] == {"team": "ml"}
    logged = [e for e in store.step_edges([row["id"]]) if e["direction"] == "log"]
    assert [e["name"] for e in logged] == ["notes"]
    from conveyor.execution.run import Artifact
    from conveyor.stores.artifacts import open_artifact_store

    notes = Artifact.from_row(
        store.get_artifact(logged[0]["artifact_id"]), open_artifact_store(settings.artifact_url)
    )
    assert notes.load() == {"x": 10}


def test_output_that_cannot_be_stored_names_step_output_and_fix(settings: Settings) -> None:
    @pipeline
    def p():
        return s.unstorable(s.source(1))

    with pytest.raises(RunFailedError) as info:
        run_pipeline(p, settings=settings)
    cause = info.value.__cause__
    assert isinstance(cause, StepFailedError)
    assert isinstance(cause.__cause__, MaterializerError)
    message = str(cause.__cause__)
    assert "'output' of step 'unstorable'" in message
    assert "register_materializer" in message


def test_threads_executor_runs_independent_branches_concurrently(settings: Settings) -> None:
    s.BARRIERS["pair"] = threading.Barrier(2)

    @pipeline
    def p():
        return {
            "a": s.rendezvous(s.source(1), barrier_name="pair"),
            "b": s.rendezvous(s.source(2), barrier_name="pair"),
        }

    run = run_pipeline(p, settings=settings, executor="threads:2", cache=False)
    assert (run.output("a"), run.output("b")) == (1, 2)


def test_step_defined_in_a_closure_runs_on_the_processes_executor(settings: Settings) -> None:
    offset = 40

    @step
    def shifted(x: int) -> int:
        return x + offset

    @pipeline
    def p():
        return {"value": shifted(s.source(2)), "pid": s.pid(s.source(3))}

    import os

    run = run_pipeline(p, settings=settings, executor="processes:2")
    assert run.output("value") == 42
    assert run.output("pid") != os.getpid()


def test_artifacts_and_metrics_logged_before_a_failure_are_kept(settings: Settings) -> None:
    @step
    def report_then_fail(x: int) -> int:
        import conveyor

        conveyor.log_artifact("report", {"problems": 2})
        conveyor.log_metrics(problems=2)
        raise ValueError("2 problems")

    @pipeline
    def p():
        return report_then_fail(s.source(1))

    with pytest.raises(RunFailedError) as info:
        run_pipeline(p, settings=settings)
    run = info.value.run
    store = open_metadata_store(settings.db_url)
    row = run.step("report_then_fail")
    logged = [e for e in store.step_edges([row["id"]]) if e["direction"] == "log"]
    assert [e["name"] for e in logged] == ["report"]
    assert store.get_artifact(logged[0]["artifact_id"])["summary"]["length"] == 1
    assert run.metrics() == {"problems": 2.0}


def test_get_run_reads_a_recorded_run_back(settings: Settings) -> None:
    import conveyor

    run = run_pipeline(s.diamond, {"n": 2}, settings=settings)
    again = conveyor.get_run(run.id[:12], settings=settings)
    assert isinstance(again, conveyor.Run)
    assert again.id == run.id and again.output("sum") == 7


def test_non_json_literals_are_stored_and_reach_dynamically_mapped_children(
    settings: Settings,
) -> None:
    import numpy as np
    import sqlalchemy as sa

    from conveyor.stores.metadata import tables

    @step
    def weighted(x: int, weights: np.ndarray) -> float:
        return float(x * weights.sum())

    @step
    def fsum(values: list[float]) -> float:
        return sum(values)

    @pipeline
    def p():
        weights = np.array([0.5, 1.5])
        return {
            "dynamic": fsum(weighted.map(s.numbers(3), weights=weights)),
            "literal": weighted(4, weights=weights),
        }

    run = run_pipeline(p, settings=settings)
    assert run.output("literal") == 8.0
    assert run.output("dynamic") == 2.0 * (0 + 1 + 2)
    store = open_metadata_store(settings.db_url)
    with store.engine.connect() as c:
        names = c.execute(
            sa.select(tables.artifacts.c.name).where(
                tables.artifacts.c.run_id == run.id, tables.artifacts.c.kind == "literal"
            )
        ).scalars()
        assert sorted(names) == ["weighted.weights", "weighted_2.weights"]


def test_a_timed_out_attempt_does_not_hold_up_a_run_that_then_succeeds(
    settings: Settings, tmp_path: Path
) -> None:
    import time

    marker = tmp_path / "first-attempt-ran"

    @step(timeout=0.3, retries=1, retry_delay=0.0)
    def slow_once(x: int) -> int:
        if not marker.exists():
            marker.touch()
            time.sleep(5)  # the workload of the first attempt: far past the timeout
        return x

    @pipeline
    def p():
        return slow_once(s.source(3))

    started = time.monotonic()
    run = run_pipeline(p, settings=settings, executor="threads:2")
    assert run.output() == 3 and run.step("slow_once")["attempts"] == 2
    assert time.monotonic() - started < 4  # the abandoned first attempt is not awaited


@step
def make_rows(n: int) -> list[int]:
    return list(range(n))


@step
def append_total(rows: list[int]) -> list[int]:
    rows.append(sum(rows))  # mutates its input in place
    return rows


@step
def count_rows(rows: list[int]) -> int:
    return len(rows)


@pipeline
def mutating_fanout(n: int = 4) -> object:
    rows = make_rows(n)
    return {"extended": append_total(rows), "count": count_rows(rows), "again": count_rows(rows)}


@pytest.mark.parametrize("executor", ["inline", "threads:2"])
def test_a_step_mutating_its_input_changes_nothing_its_siblings_see(
    settings: Settings, executor: str
) -> None:
    first = run_pipeline(mutating_fanout, {"n": 4}, settings=settings, executor=executor)
    cached = run_pipeline(mutating_fanout, {"n": 4}, settings=settings, executor=executor)
    for run in (first, cached):
        assert run.status == "completed"
        assert run.output("extended") == [0, 1, 2, 3, 6]
        assert run.output("count") == 4
        assert run.output("again") == 4

"""Values handed to the last consumer without a copy; thread pools kept between runs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from conveyor import pipeline, step
from conveyor.config import Settings
from conveyor.execution.executors import ThreadsExecutor
from conveyor.execution.orchestrator import run_pipeline


@step
def rows(n: int) -> list[int]:
    return list(range(n))


@step
def count(values: list[int]) -> int:
    return len(values)


@step
def zz_extend(values: list[int]) -> list[int]:
    # Launched last of the three consumers (siblings launch in name order): it takes the
    # value itself, not a copy.
    values.append(sum(values))
    return values


@pipeline
def last_consumer_mutates(n: int = 3) -> object:
    values = rows(n)
    return {"a": count(values), "b": count(values), "extended": zz_extend(values)}


@pytest.mark.parametrize("executor", ["inline", "threads:2"])
def test_the_last_consumer_mutating_its_input_changes_nothing_its_siblings_see(
    settings: Settings, executor: str
) -> None:
    run = run_pipeline(
        last_consumer_mutates, {"n": 3}, settings=settings, executor=executor, cache=False
    )
    assert run.output("a") == run.output("b") == 3
    assert run.output("extended") == [0, 1, 2, 3]


def test_a_retry_of_the_last_consumer_sees_the_value_as_stored(
    settings: Settings, tmp_path: Path
) -> None:
    marker = tmp_path / "failed-once"
    seen: list[list[int]] = []

    @step(retries=1, retry_delay=0.0)
    def mutate_then_fail(values: list[int]) -> int:
        seen.append(list(values))
        values.append(99)  # the first attempt damages the value it was handed...
        if not marker.exists():
            marker.touch()
            raise RuntimeError("first attempt fails")
        return len(values)

    @pipeline
    def p():
        return mutate_then_fail(rows(3))

    run = run_pipeline(p, settings=settings, executor="threads:2", cache=False)
    # ...and its retry gets the stored value, not the damaged one.
    assert seen == [[0, 1, 2], [0, 1, 2]]
    assert run.output() == 4 and run.step("mutate_then_fail")["attempts"] == 2


def _thread_of(executor: ThreadsExecutor) -> threading.Thread:
    # The thread object, not its ident: the OS reuses idents of threads that ended.
    return executor.submit(threading.current_thread).result()


def test_a_threads_executor_reuses_the_threads_of_one_shut_down_after_its_work() -> None:
    first = ThreadsExecutor(1)
    thread = _thread_of(first)
    first.shutdown(wait=True)
    second = ThreadsExecutor(1)
    try:
        assert _thread_of(second) is thread
    finally:
        second.shutdown(wait=True)
    with pytest.raises(RuntimeError, match="shut down"):
        first.submit(threading.get_ident)


def test_shutdown_waits_for_running_work_before_the_threads_are_reused() -> None:
    executor = ThreadsExecutor(1)
    release = threading.Event()
    started = threading.Event()

    def work() -> str:
        started.set()
        release.wait(10)
        return "done"

    future = executor.submit(work)
    started.wait(10)
    closer = threading.Thread(target=executor.shutdown, kwargs={"wait": True})
    closer.start()
    closer.join(0.2)
    assert closer.is_alive() and not future.done()  # still waiting for the work
    release.set()
    closer.join(10)
    assert not closer.is_alive() and future.result() == "done"


def test_a_threads_executor_shut_down_without_waiting_gives_its_threads_up() -> None:
    first = ThreadsExecutor(3)
    thread = _thread_of(first)
    first.shutdown(wait=False)
    second = ThreadsExecutor(3)
    try:
        assert _thread_of(second) is not thread
    finally:
        second.shutdown(wait=True)


# ---------------------------------------------------------------- steps run where there is work
THREADS: dict[str, threading.Thread] = {}


@step
def where(tag: str) -> str:
    THREADS[tag] = threading.current_thread()
    return tag


@step
def where_after(tag: str, after: str) -> str:
    THREADS[tag] = threading.current_thread()
    return tag


@pipeline
def where_chain() -> str:
    return where_after("second", where("first"))


def test_a_threads_executor_runs_a_lone_step_in_the_calling_thread(settings: Settings) -> None:
    THREADS.clear()
    run_pipeline(where_chain, settings=settings, executor="threads:2", cache=False)
    here = threading.current_thread()
    assert THREADS["first"] is here and THREADS["second"] is here


def test_without_inline_when_idle_every_step_runs_in_a_pool_thread(settings: Settings) -> None:
    THREADS.clear()
    executor = ThreadsExecutor(2, inline_when_idle=False)
    try:
        run_pipeline(where_chain, settings=settings, executor=executor, cache=False)
    finally:
        executor.shutdown(wait=True)
    assert threading.current_thread() not in THREADS.values()


def test_a_step_with_a_timeout_runs_in_a_pool_thread(settings: Settings) -> None:
    THREADS.clear()

    @step(timeout=30)
    def timed() -> str:
        THREADS["timed"] = threading.current_thread()
        return "x"

    @pipeline
    def p() -> str:
        return timed()

    run_pipeline(p, settings=settings, executor="threads:2", cache=False)
    assert THREADS["timed"] is not threading.current_thread()


def test_siblings_still_run_at_the_same_time(settings: Settings) -> None:
    # Each waits for the other: run one after the other (one in the calling thread), they
    # would time out at the barrier.
    barrier = threading.Barrier(2, timeout=20)

    @step
    def meet(tag: str) -> str:
        barrier.wait()
        return tag

    @pipeline
    def p() -> object:
        return {"a": meet("a"), "b": meet("b")}

    run = run_pipeline(p, settings=settings, executor="threads:2", cache=False)
    assert run.output("a") == "a" and run.output("b") == "b"


def test_under_a_running_event_loop_steps_run_in_a_pool_thread(settings: Settings) -> None:
    import asyncio

    THREADS.clear()

    @step
    def uses_asyncio() -> int:
        THREADS["async"] = threading.current_thread()

        async def one() -> int:
            return 1

        return asyncio.run(one())  # fails in a thread whose event loop is running

    @pipeline
    def p() -> int:
        return uses_asyncio()

    async def main() -> int:  # as a notebook cell runs: inside the kernel's loop
        return int(run_pipeline(p, settings=settings, executor="threads:2", cache=False).output())

    assert asyncio.run(main()) == 1
    assert THREADS["async"] is not threading.current_thread()

"""200-way `map` fan-out + reduce of trivial steps (issue 2 target: under 1 s).

The baseline is the same work as plain Python calls, measured in the same run.
"""

from __future__ import annotations

import sys

from _common import best_of, fresh_settings

from conveyor import pipeline, step
from conveyor.execution.orchestrator import run_pipeline

WIDTH = 200


@step
def items(n: int) -> list[int]:
    return list(range(n))


@step
def square(x: int) -> int:
    return x * x


@step
def total(values: list[int]) -> int:
    return sum(values)


@pipeline
def fanout(n: int = WIDTH, salt: int = 0) -> object:
    return total(square.map(items(n + salt - salt)))


def main() -> None:
    executor = sys.argv[1] if len(sys.argv) > 1 else None
    settings = fresh_settings()
    run_pipeline(fanout, {"n": 3}, settings=settings, executor=executor)
    plain, _ = best_of(20, lambda: sum(x * x for x in range(WIDTH)))
    sizes = iter(range(10**6))

    def once() -> None:
        # A different n each time defeats the cache: every square step really runs.
        run = run_pipeline(
            fanout,
            {"n": WIDTH, "salt": next(sizes)},
            settings=settings,
            executor=executor,
            cache=False,
        )
        assert run.output() == sum(x * x for x in range(WIDTH))

    best, median = best_of(3, once)
    print(f"executor: {executor or settings.executor}")
    print(
        f"{WIDTH}-way map + reduce ({WIDTH + 2} step runs): best {best:.3f} s, "
        f"median {median:.3f} s (target < 1 s); plain Python {plain * 1e6:.0f} us, "
        f"ratio {best / plain:.0f}x"
    )


if __name__ == "__main__":
    main()

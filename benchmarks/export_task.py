"""Orchestrator tasks: start-up cost of `conveyor task run`, and the size of exported files.

Run: .venv/bin/python benchmarks/export_task.py [ROUNDS] [--before SRC]
1. Per-task overhead: a fresh `conveyor task run` process for a trivial step, from process
   start to the first line of the step's body, against the baseline of a fresh
   `python -c "import conveyor"` measured in the same run, interleaved round by round
   (target: < 0.5 s beyond it). On SQLite and on PostgreSQL (a throwaway database on
   127.0.0.1:5432, dropped at the end; CONVEYOR_BENCH_PG_URL names the server's admin
   database). Each run was started by `conveyor task start` beforehand, as the first task
   of a workflow does. Also the process CPU time (user + system) of each, and for
   reference the cost of importing psycopg alone (what the task path on PostgreSQL
   imports) and SQLAlchemy's psycopg dialect (what it imported before the direct path).
   With ``--before SRC`` (a copy of another version's ``src`` folder), each store is also
   measured with that code on PYTHONPATH, interleaved in the same rounds: a before/after
   comparison in the same conditions.
2. Exported files for a 200-step pipeline (target: < 100 KB each).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("CONVEYOR_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PIPELINE = textwrap.dedent(
    """
    import os
    import time

    from conveyor import pipeline, step

    @step(cache=False)
    def touch(i: int) -> int:
        with open(os.environ["BENCH_STAMP"], "a") as handle:
            handle.write(f"{time.time()}\\n")
        return i

    @step
    def inc(x: int) -> int:
        return x + 1

    @pipeline
    def bench(n: int = 1):
        return touch(n)

    @pipeline
    def chain(n: int = 200):
        value = inc(0)
        for _ in range(n - 1):
            value = inc(value)
        return value
    """
)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(run: Callable[[], None]) -> tuple[float, float]:
    cpu, start = _cpu(), time.perf_counter()
    run()
    return time.perf_counter() - start, _cpu() - cpu


def _postgres_database() -> tuple[str, Callable[[], None]] | None:
    """A fresh database's URL and its dropper, or None when no server answers."""
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except Exception as exc:
        print(f"PostgreSQL skipped: {type(exc).__name__}: {exc}".splitlines()[0])
        return None
    name = f"conveyor_bench_task_{os.getpid()}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)

    def drop() -> None:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return f"{base}/{name}", drop


def main() -> None:
    args = sys.argv[1:]
    before = None
    if "--before" in args:
        at = args.index("--before")
        before = str(Path(args[at + 1]).resolve())
        del args[at : at + 2]
    rounds = int(args[0]) if args else 7
    root = Path(tempfile.mkdtemp(prefix="conveyor-bench-task-"))
    (root / "flow.py").write_text(PIPELINE)
    (root / "conveyor.toml").write_text('[conveyor]\nexecutor = "inline"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["BENCH_STAMP"] = str(root / "stamp.txt")
    conveyor = str(BIN / "conveyor")
    stores = {"sqlite": {"CONVEYOR_DB_URL": f"sqlite:///{root / 'conveyor.db'}"}}
    postgres = _postgres_database()
    if postgres is not None:
        stores["postgres"] = {
            "CONVEYOR_DB_URL": postgres[0],
            "CONVEYOR_ARTIFACT_URL": f"file://{root / 'shared'}",
        }

    def call(extra: dict[str, str], *args: str) -> None:
        subprocess.run(
            [conveyor, *args], cwd=root, env={**env, **extra}, check=True, capture_output=True
        )

    def python(code: str) -> None:
        subprocess.run([sys.executable, "-c", code], env=env, check=True)

    if before is not None:
        stores |= {
            f"{name} (before)": {**extra, "PYTHONPATH": before} for name, extra in stores.items()
        }
    for name, extra in stores.items():  # create each store and warm the file cache
        warm = f"warm-{name}"
        call(extra, "task", "start", "flow.py:bench", "--run-key", warm)
        call(extra, "task", "run", "flow.py:bench", "--run-key", warm, "--node", "touch")
    figures: dict[str, list[tuple[float, float]]] = {"import conveyor": []}
    figures |= {name: [] for name in stores}
    drivers: dict[str, list[tuple[float, float]]] = {
        "psycopg": [],
        "sqlalchemy.dialects.postgresql.psycopg": [],
    }
    try:
        for i in range(rounds):
            figures["import conveyor"].append(_timed(lambda: python("import conveyor")))
            if postgres is not None:
                for module, times in drivers.items():
                    times.append(_timed(lambda module=module: python(f"import {module}")))
            for name, extra in stores.items():
                key = f"bench-{name}-{i}"
                call(extra, "task", "start", "flow.py:bench", "--run-key", key)
                stamp = root / "stamp.txt"
                stamp.unlink(missing_ok=True)
                wall0 = time.time()
                _, cpu = _timed(
                    lambda extra=extra, key=key: call(
                        extra, "task", "run", "flow.py:bench", "--run-key", key, "--node", "touch"
                    )
                )
                figures[name].append((float(stamp.read_text().split()[0]) - wall0, cpu))
    finally:
        if postgres is not None:
            postgres[1]()
    print(f"load average {os.getloadavg()}, {rounds} interleaved rounds, medians")
    base_wall = statistics.median(w for w, _ in figures["import conveyor"])
    base_cpu = statistics.median(c for _, c in figures["import conveyor"])
    print(
        f"baseline python -c 'import conveyor': wall {base_wall * 1000:.0f} ms, "
        f"CPU {base_cpu * 1000:.0f} ms"
    )
    for module, times in drivers.items():
        if times:
            wall = statistics.median(w for w, _ in times)
            print(
                f"reference: python -c 'import {module}': wall {wall * 1000:.0f} ms "
                f"(beyond the baseline {(wall - base_wall) * 1000:.0f} ms), CPU "
                f"{statistics.median(c for _, c in times) * 1000:.0f} ms"
            )
    for name in stores:
        wall = statistics.median(w for w, _ in figures[name])
        cpu = statistics.median(c for _, c in figures[name])
        print(
            f"{name}: task process start -> step body {wall * 1000:.0f} ms, beyond the import "
            f"{(wall - base_wall) * 1000:.0f} ms (target < 500 ms), x{wall / base_wall:.1f}; "
            f"whole task process CPU {cpu * 1000:.0f} ms, beyond the import's "
            f"{(cpu - base_cpu) * 1000:.0f} ms"
        )
    local = stores["sqlite"]
    for kind, extra in (
        ("airflow", []),
        ("argo", ["--image", "ml:1"]),
        ("kfp", ["--image", "ml:1"]),
    ):
        out = root / f"chain.{kind}"
        call(local, "export", kind, "flow.py:chain", "-o", str(out), "--allow-local", *extra)
        size = out.stat().st_size
        print(f"export {kind}, 200 steps: {size / 1024:.1f} KB (target < 100 KB)")


if __name__ == "__main__":
    main()

"""Web UI and REST API on a big store (issue 13): 100,000 runs and 2,000,000 step runs, on
SQLite and (when one listens on 127.0.0.1:5432) PostgreSQL.

Targets: runs page (first and a later page, filtered by pipeline + status) under 50 ms of
server time; sorted by a metric under 200 ms; page weight under 300 KB; a run of 2,000
steps under 300 ms; compare of 20 runs under 300 ms; `conveyor ui` start to first page
under 1.5 s; `import conveyor` under 0.15 s.

Server time is the ``Server-Timing`` header the app adds (request in, response out) for
requests sent through httpx's ASGI transport, median of 15 after 2 warm-ups. The baseline
of each scenario is the raw SQL of the same rows through the DB-API in the same run; the
ratio says what the API and the page add on top of fetching the rows.

Rows are bulk-inserted (executemany on SQLite, COPY on PostgreSQL) into the tables the
migrations create: runs with params and a tag, step runs with cache keys, two metrics per
run (accuracy, and a five-point loss curve), and a lineage edge into and out of every step
(artifact rows themselves are not needed by these pages and are left out).

    .venv/bin/python benchmarks/ui.py [--runs 100000] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from conveyor.config import load_settings

PIPELINES = 10
STEPS_PER_RUN = 20
BIG_STEPS = 2000
REPEAT = 15
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
BASE_TIME = 1_700_000_000.0


def ulid(ms: int, seq: int) -> str:
    """A sortable 26-character id: milliseconds, then a sequence number."""
    value = ms << 80 | seq
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


# ---------------------------------------------------------------------------- data
def status_of(i: int) -> str:
    roll = (i * 7919) % 100
    return "failed" if roll < 15 else ("running" if roll < 17 else "completed")


def generate(runs: int) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
    """Chunks of rows for every table (run 0 is the 2,000-step run)."""
    rng = random.Random(0)
    seq = 0
    chunk: dict[str, list[tuple[Any, ...]]] = {
        "runs": [],
        "run_tags": [],
        "step_runs": [],
        "lineage_edges": [],
        "metrics": [],
    }
    for i in range(runs):
        created = BASE_TIME + i * 10.0
        ms = int(created * 1000)
        run_id = ulid(ms, seq)
        seq += 1
        status = status_of(i)
        pipeline = "big" if i == 0 else f"p{i % PIPELINES}"
        params = json.dumps({"alpha": round(rng.random(), 4), "seed": i})
        chunk["runs"].append(
            (run_id, pipeline, status, created, created, created + 5.0, params, "null")
        )
        chunk["run_tags"].append((run_id, "team", f"t{i % 5}"))
        steps = BIG_STEPS if i == 0 else STEPS_PER_RUN
        outputs: list[str] = []
        for s in range(steps):
            step_id = ulid(ms, seq)
            artifact_id = ulid(ms, seq + 1)
            seq += 2
            failed = status == "failed" and s == steps - 1
            chunk["step_runs"].append(
                (
                    step_id,
                    run_id,
                    f"s{s}",
                    f"s{s % 50}",
                    "failed" if failed else "completed",
                    1,
                    created + s * 0.001,
                    created + s * 0.001 + 0.0005,
                    0.0005,
                    f"{rng.getrandbits(128):032x}",
                    s % 3 == 0,
                )
            )
            chunk["lineage_edges"].append((run_id, step_id, artifact_id, "out", "output"))
            if s:
                chunk["lineage_edges"].append((run_id, step_id, outputs[s - 1], "in", "data"))
            if i == 0 and s > 2:
                chunk["lineage_edges"].append((run_id, step_id, outputs[s // 2], "in", "extra"))
            outputs.append(artifact_id)
        step_id = chunk["step_runs"][-1][0]
        chunk["metrics"].append((run_id, step_id, "accuracy", rng.random(), None, created))
        for epoch in range(5):
            chunk["metrics"].append(
                (run_id, step_id, "loss", 1.0 / (epoch + 1) + rng.random() * 0.01, epoch, created)
            )
        if len(chunk["step_runs"]) >= 200_000:
            yield chunk
            chunk = {k: [] for k in chunk}
    yield chunk


COLUMNS = {
    "runs": (
        "id",
        "pipeline",
        "status",
        "created_at",
        "started_at",
        "ended_at",
        "params",
        "trigger",
    ),
    "run_tags": ("run_id", "key", "value"),
    "step_runs": (
        "id",
        "run_id",
        "name",
        "step",
        "status",
        "attempts",
        "started_at",
        "ended_at",
        "duration",
        "cache_key",
        "cache_hit",
    ),
    "lineage_edges": ("run_id", "step_run_id", "artifact_id", "direction", "name"),
    "metrics": ("run_id", "step_run_id", "key", "value", "step", "timestamp"),
}


def populate(engine: sa.Engine, runs: int) -> float:
    """Insert every row; returns seconds."""
    started = time.perf_counter()
    raw = engine.raw_connection()
    try:
        postgres = engine.dialect.name == "postgresql"
        cursor = raw.cursor()
        if not postgres:
            cursor.execute("BEGIN")
        for chunk in generate(runs):
            for table, rows in chunk.items():
                if not rows:
                    continue
                columns = COLUMNS[table]
                if postgres:
                    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                else:
                    marks = ", ".join("?" for _ in columns)
                    cursor.executemany(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
                    )
        if postgres:
            raw.commit()
            cursor.execute("ANALYZE")
            raw.commit()
        else:
            cursor.execute("COMMIT")
    finally:
        raw.close()
    return time.perf_counter() - started


# ---------------------------------------------------------------------------- timing
def server_times(app: Any, path: str, params: Any = None) -> tuple[float, float, int, float]:
    """(median, best) Server-Timing in ms of `REPEAT` requests, the response size, and the
    median CPU ms per request (all threads of this process: the figure on an idle machine
    when other work shares the cores)."""

    async def go() -> tuple[list[float], int, list[float]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            times: list[float] = []
            cpu: list[float] = []
            size = 0
            for i in range(REPEAT + 2):
                started = time.process_time()
                response = await c.get(path, params=params)
                used = (time.process_time() - started) * 1000
                if response.status_code != 200:
                    raise SystemExit(f"{path} answered {response.status_code}: {response.text}")
                size = len(response.content)
                if i >= 2:
                    timing = response.headers["server-timing"]
                    times.append(float(timing.split("dur=")[1]))
                    cpu.append(used)
            return times, size, cpu

    times, size, cpu = asyncio.run(go())
    return statistics.median(times), min(times), size, statistics.median(cpu)


def sql_time(engine: sa.Engine, statement: str, params: Sequence[Any] = ()) -> float:
    """Median ms of the raw statement through the DB-API (rows fetched)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            statement = statement.replace("?", "%s")
        times = []
        for i in range(REPEAT + 2):
            start = time.perf_counter()
            cursor.execute(statement, tuple(params))
            cursor.fetchall()
            if i >= 2:
                times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)
    finally:
        raw.close()


def report(
    name: str, target_ms: float, measured: tuple[float, float, int, float], base: float
) -> None:
    median, best, size, cpu = measured
    ok = "ok" if median < target_ms else "OVER"
    print(
        f"  {name:<46} median {median:7.1f} ms  best {best:7.1f} ms  CPU {cpu:7.1f} ms  "
        f"[< {target_ms:.0f} ms: {ok}]  SQL {base:6.2f} ms  ratio {median / base:6.1f}  "
        f"({size / 1024:.0f} KB)"
    )


# ---------------------------------------------------------------------------- scenarios
def scenarios(settings: Any, engine: sa.Engine) -> None:
    print(f"  load average at start: {os.getloadavg()}")
    from conveyor.api.auth import AuthConfig
    from conveyor.api.queries._page import encode_cursor

    try:
        from conveyor.ui.app import create_app

        app = create_app(settings, AuthConfig.open_local())
        pages = True
    except Exception as exc:  # the pages are optional here; the API is what is measured
        from conveyor.api.app import create_api_app

        print(f"  (pages unavailable: {exc}; measuring the API only)")
        app = create_api_app(settings, AuthConfig.open_local())
        pages = False

    runs_sql = (
        "SELECT id, pipeline, status, created_at, started_at, ended_at, code_sha, code_dirty, "
        "executor, trigger, params, error FROM runs WHERE pipeline = ? AND status = ? "
        "ORDER BY created_at DESC, id DESC LIMIT 51"
    )
    filters = {"pipeline": "p3", "status": "completed", "limit": 50}
    base = sql_time(engine, runs_sql, ("p3", "completed"))
    report(
        "API runs, pipeline+status, first page",
        50,
        server_times(app, "/api/v1/runs", filters),
        base,
    )
    with engine.connect() as c:
        total = c.execute(sa.text("SELECT count(*) FROM runs")).scalar_one()
        # Row 5,000 of the filtered list at full size (about 8,000 rows match).
        deep = min(5000, total // 20)
        anchor = c.execute(
            sa.text(
                "SELECT created_at, id FROM runs WHERE pipeline = 'p3' AND status = 'completed' "
                "ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET :n"
            ),
            {"n": deep},
        ).one()
        failed_anchor = c.execute(
            sa.text(
                "SELECT created_at, id FROM runs WHERE pipeline = 'p3' AND status = 'failed' "
                "ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET :n"
            ),
            {"n": deep // 10},
        ).one()
    later = {**filters, "before": encode_cursor([anchor.created_at, anchor.id])}
    later_sql = runs_sql.replace("ORDER BY", "AND (created_at, id) < (?, ?) ORDER BY")
    base_later = sql_time(engine, later_sql, ("p3", "completed", anchor.created_at, anchor.id))
    report(
        f"API runs, pipeline+status, page at row {deep:,}",
        50,
        server_times(app, "/api/v1/runs", later),
        base_later,
    )
    failed = {
        "pipeline": "p3",
        "status": "failed",
        "limit": 50,
        "before": encode_cursor([failed_anchor.created_at, failed_anchor.id]),
    }
    base_failed = sql_time(
        engine,
        later_sql,
        ("p3", "failed", failed_anchor.created_at, failed_anchor.id),
    )
    report(
        f"API runs, pipeline+failed, page at row {deep // 10:,}",
        50,
        server_times(app, "/api/v1/runs", failed),
        base_failed,
    )

    # The same rows straight from SQL: the last accuracy of each run, best first.
    metric_sql = (
        "SELECT r.*, m.value FROM metrics m JOIN runs r ON r.id = m.run_id "
        "WHERE m.key = 'accuracy' AND NOT EXISTS (SELECT 1 FROM metrics l "
        "WHERE l.run_id = m.run_id AND l.key = m.key AND l.id > m.id) "
        "ORDER BY m.value DESC, m.run_id DESC LIMIT 51"
    )
    base_metric = sql_time(engine, metric_sql)
    sort = {"sort": "-metric:accuracy", "metric": ["accuracy", "loss"], "limit": 50}
    report(
        "API runs sorted by a metric (100,000 runs)",
        200,
        server_times(app, "/api/v1/runs", sort),
        base_metric,
    )
    sort_filtered = {**sort, "pipeline": "p3", "status": "completed"}
    report(
        "API runs sorted by a metric, pipeline+status",
        200,
        server_times(app, "/api/v1/runs", sort_filtered),
        base_metric,
    )

    # A parameter sort reads the value out of each run's params JSON (no index covers an
    # arbitrary key): the baseline is the same scan and sort in raw SQL.
    alpha = (
        "(params->>'alpha')::float"
        if engine.dialect.name == "postgresql"
        else "json_extract(params, '$.alpha')"
    )
    param_sql = f"SELECT * FROM runs ORDER BY {alpha} DESC, id DESC LIMIT 51"
    base_param = sql_time(engine, param_sql)
    report(
        "API runs sorted by a param (100,000 runs)",
        200,
        server_times(app, "/api/v1/runs", {"sort": "-param:alpha", "limit": 50}),
        base_param,
    )
    param_filtered_sql = param_sql.replace("ORDER BY", "WHERE pipeline = ? AND status = ? ORDER BY")
    base_param_filtered = sql_time(engine, param_filtered_sql, ("p3", "completed"))
    report(
        "API runs sorted by a param, pipeline+status",
        200,
        server_times(app, "/api/v1/runs", {**filters, "sort": "-param:alpha"}),
        base_param_filtered,
    )

    with engine.connect() as c:
        big = c.execute(sa.text("SELECT id FROM runs WHERE pipeline = 'big'")).scalar_one()
        twenty = list(
            c.execute(
                sa.text(
                    "SELECT id FROM runs WHERE pipeline = 'p4' ORDER BY created_at DESC LIMIT 20"
                )
            ).scalars()
        )
    steps_sql = "SELECT * FROM step_runs WHERE run_id = ? ORDER BY id"
    base_steps = sql_time(engine, steps_sql, (big,))
    report(
        "API run graph, 2,000 steps",
        300,
        server_times(app, f"/api/v1/runs/{big}/graph"),
        base_steps,
    )
    report("API run detail, 2,000 steps", 300, server_times(app, f"/api/v1/runs/{big}"), base_steps)
    marks = ", ".join("?" for _ in twenty)
    base_compare = sql_time(
        engine, f"SELECT run_id, name, cache_key FROM step_runs WHERE run_id IN ({marks})", twenty
    )
    report(
        "API compare of 20 runs",
        300,
        server_times(app, "/api/v1/compare", {"runs": ",".join(twenty)}),
        base_compare,
    )
    if pages:
        report(
            "page /runs, pipeline+status, first page", 50, server_times(app, "/runs", filters), base
        )
        report(
            f"page /runs, pipeline+status, page at row {deep:,}",
            50,
            server_times(app, "/runs", later),
            base_later,
        )
        report(
            "page /runs sorted by a metric",
            200,
            server_times(app, "/runs", {"sort": "-metric:accuracy", "limit": 50}),
            base_metric,
        )
        report(
            "page /runs sorted by a param, pipeline+status",
            200,
            server_times(app, "/runs", {**filters, "sort": "-param:alpha"}),
            base_param_filtered,
        )
        report("page /runs/ID, 2,000 steps", 300, server_times(app, f"/runs/{big}"), base_steps)
        report(
            "page /compare, 20 runs",
            300,
            server_times(app, "/compare", {"runs": ",".join(twenty)}),  # the documented form
            base_compare,
        )
        size = server_times(app, "/runs", filters)[2]
        verdict = "ok" if size < 300 * 1024 else "OVER"
        print(f"  page weight of /runs (50 rows): {size / 1024:.0f} KB [< 300 KB: {verdict}]")
    print(f"  load average at end: {os.getloadavg()}")


# ---------------------------------------------------------------------------- processes
def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_to_first_page(settings: Any) -> tuple[float, float, float]:
    """(wall seconds from `conveyor ui` start to its first page, the server's CPU seconds
    by then, and the `python -c pass` baseline): CPU time shows what the figure is on an
    idle machine when other work shares the cores."""
    conveyor = str(Path(sys.executable).parent / "conveyor")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            conveyor,
            "--db-url",
            settings.db_url,
            "--artifact-url",
            settings.artifact_url,
            "ui",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = started + 60
        while time.perf_counter() < deadline:
            if proc.poll() is not None:
                raise SystemExit(
                    f"conveyor ui exited: {proc.stderr.read().decode() if proc.stderr else ''}"
                )
            try:
                if httpx.get(f"http://127.0.0.1:{port}/runs", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.01)
        elapsed = time.perf_counter() - started
        cpu = process_cpu(proc.pid)
    finally:
        proc.terminate()
        proc.wait(20)
    base = best_process([sys.executable, "-c", "pass"])
    return elapsed, cpu, base


def best_process(command: list[str], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True)
        times.append(time.perf_counter() - start)
    return min(times)


def backend(name: str, url: str, runs: int, folder: Path) -> sa.Engine:
    from conveyor.stores.metadata import open_metadata_store

    store = open_metadata_store(url, auto_upgrade=True)
    with store.engine.connect() as c:
        existing = c.execute(sa.text("SELECT count(*) FROM runs")).scalar_one()
    seconds = 0.0 if existing else populate(store.engine, runs)
    with store.engine.connect() as c:
        counts = {
            t: c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("runs", "step_runs", "lineage_edges", "metrics")
        }
    print(f"{name}: inserted {counts} in {seconds:.1f} s")
    settings = load_settings(
        root=folder, env={}, db_url=url, artifact_url=str(folder / "artifacts")
    )
    scenarios(settings, store.engine)
    return store.engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument(
        "--folder", type=Path, help="Keep the SQLite store here (reused when already filled)."
    )
    parser.add_argument(
        "--postgres-url",
        help="Use (and keep) this PostgreSQL database instead of a throwaway one; filled "
        "on first use.",
    )
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="conveyor-bench-ui-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if not args.skip_sqlite:
            sqlite(args.runs, folder)
        if args.postgres_url:
            backend("PostgreSQL", args.postgres_url, args.runs, folder)
        elif not args.skip_postgres:
            postgres(args.runs, folder)
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)


def sqlite(runs: int, folder: Path) -> None:
    sqlite_url = f"sqlite:///{folder / 'conveyor.db'}"
    backend("SQLite", sqlite_url, runs, folder)
    settings = load_settings(
        root=folder, env={}, db_url=sqlite_url, artifact_url=str(folder / "artifacts")
    )
    elapsed, cpu, base = start_to_first_page(settings)
    print(
        f"`conveyor ui` start to first page (SQLite store): {elapsed:.2f} s wall, "
        f"{cpu:.2f} s CPU [< 1.5 s: {'ok' if elapsed < 1.5 else 'OVER'}]; "
        f"`python -c pass` {base:.3f} s, ratio {elapsed / base:.1f}; load average "
        f"{os.getloadavg()}"
    )
    imported = best_process([sys.executable, "-c", "import conveyor"])
    extra = imported - base
    print(
        f"`import conveyor` process: {imported:.3f} s, minus `python -c pass` {extra:.3f} s "
        f"[< 0.15 s: {'ok' if extra < 0.15 else 'OVER'}]"
    )


def postgres(runs: int, folder: Path) -> None:
    admin_url = os.environ.get(
        "CONVEYOR_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            pass
    except OSError:
        print("PostgreSQL: nothing listens on 127.0.0.1:5432; skipped")
        return
    name = f"conveyor_bench_ui_{os.getpid()}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        engine = backend("PostgreSQL", url, runs, folder)
        engine.dispose()
    finally:
        from conveyor.stores.metadata.engine import _ENGINES

        dropped = _ENGINES.pop(url, None)
        if dropped is not None:
            dropped.dispose()
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()

"""Before/after A/B of the streaming, drift and data benchmarks (issue 17, target 6).

Each benchmark script in this folder runs unchanged as its own process, once with the
"before" tree's `src` first on PYTHONPATH and once with the "after" tree's (console scripts
it spawns, such as `conveyor stream`, inherit it). The two trees alternate within every
round (before/after, then after/before, ...), and each round passes over every benchmark,
so that load from other jobs on the shared machine falls on both trees alike. Reported per
figure: every run's value, the median per tree and after/before. "worse" is the slowdown
factor whatever the direction (after/before for times, before/after for rates); figures
worse than --flag (1.10) are flagged. Beside the scripts' own figures: the CPU time
(user + system, children included) of each whole benchmark process, and the load average
when each run started. Figures of the in-run baselines (scipy, pandas), which run no
conveyor code, are marked as controls and never flagged; nor is each process's wall time
(mostly set-up: imports, data generation, training).

Run: .venv/bin/python benchmarks/regression_ab.py --before /work/before/src [--after src]
    [--rounds 3] [--only streaming drift profile validate] [--json-out FILE]
    [--streaming-args "--messages 200000 --duration 20"] [--drift-args "--sizes 100000"]
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import os
import re
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYCACHE = Path(tempfile.gettempdir()) / "conveyor-regression-ab-pycache"

Figures = dict[str, float]


@dataclass(frozen=True)
class Bench:
    """One benchmark script and how to read its figures from its output."""

    script: str
    parse: Callable[[str], Figures]
    # figure name -> True when higher is better (rates); absent: lower is better
    higher_better: frozenset[str] = frozenset()
    # endings of the names of figures of in-run baselines that run no conveyor code: shown,
    # never flagged
    controls: frozenset[str] = frozenset()


def parse_streaming(text: str) -> Figures:
    """Figures from streaming.py's `kafka throughput: {...}` style lines."""
    out: Figures = {}
    for kind, phase, literal in re.findall(
        r"^(kafka|redis) (throughput|latency):\s+(\{.*\})$", text, re.M
    ):
        values = ast.literal_eval(literal)  # a dict of numbers, never evaluated as code
        if phase == "throughput":
            out[f"{kind} throughput msg/s"] = float(values["msg_per_s"])
            if "cpu_s" in values:
                out[f"{kind} scoring CPU us/msg"] = 1e6 * values["cpu_s"] / values["messages"]
        else:
            out[f"{kind} latency p50 ms"] = float(values["p50_ms"])
            out[f"{kind} latency p99 ms"] = float(values["p99_ms"])
    return out


def parse_drift(text: str) -> Figures:
    """Figures from monitoring_drift.py's table rows."""
    out: Figures = {}
    row = re.compile(
        r"^\| ([\d,]+) \| ([\d.]+) s \| (\d+) MiB \(imports \d+\) \| ([\d.]+) s \| (\d+) MiB"
    )
    for line in text.splitlines():
        match = row.match(line)
        if match:
            rows = match.group(1)
            ours, theirs = float(match.group(2)), float(match.group(4))
            out[f"drift {rows}: conveyor s"] = ours
            out[f"drift {rows}: peak MiB"] = float(match.group(3))
            out[f"drift {rows}: scipy s"] = theirs
            out[f"drift {rows}: conveyor / scipy"] = ours / theirs
    for rows, cpu in re.findall(
        r"^([\d,]+) rows: conveyor CPU time \(best of 5\) ([\d.]+) s", text, re.M
    ):
        out[f"drift {rows}: conveyor CPU s"] = float(cpu)
    return out


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text, re.M)
    if match is None:
        raise ValueError(f"expected a line matching {pattern!r} in the output")
    return float(match.group(1))


def parse_profile(text: str) -> Figures:
    """Figures from data_profile.py."""
    ours = _number(r"^profile 1M x 50: ([\d.]+) s", text)
    theirs = _number(r"^pandas describe \+ value_counts: ([\d.]+) s", text)
    out = {"profile s": ours, "pandas s": theirs, "profile / pandas": ours / theirs}
    cpu = re.search(r"^CPU time \(best of 3\): profile ([\d.]+) s, pandas ([\d.]+) s", text, re.M)
    if cpu:
        out["profile CPU s"], out["pandas CPU s"] = float(cpu.group(1)), float(cpu.group(2))
    return out


def parse_validate(text: str) -> Figures:
    """Figures from data_validate.py."""
    out = {"validate s": _number(r"^validate 1M x 50 [^:]*: ([\d.]+) s", text)}
    cpu = re.search(r"^CPU time \(best of 3\): ([\d.]+) s", text, re.M)
    if cpu:
        out["validate CPU s"] = float(cpu.group(1))
    return out


BENCHES = {
    "streaming": Bench(
        "streaming.py",
        parse_streaming,
        higher_better=frozenset({"kafka throughput msg/s", "redis throughput msg/s"}),
    ),
    "drift": Bench(
        "monitoring_drift.py",
        parse_drift,
        controls=frozenset({": scipy s"}),
    ),
    "profile": Bench(
        "data_profile.py", parse_profile, controls=frozenset({"pandas s", "pandas CPU s"})
    ),
    "validate": Bench("data_validate.py", parse_validate),
}
PROCESS_CPU = "whole process CPU s"
PROCESS_WALL = "whole process wall s"


@dataclass
class Runs:
    """Every run's figures of one benchmark on one tree."""

    figures: list[Figures] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    failures: int = 0


def environment(src: Path) -> dict[str, str]:
    """This process's environment with `src` first on the path and no CONVEYOR_* settings.

    Bytecode is cached in a folder of our own for both trees alike (compiling conveyor's
    sources in every process would add the same ~0.1 s to every run of both trees).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["PYTHONPATH"] = str(src)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def check_tree(src: Path) -> None:
    """Fail in one line unless `import conveyor` resolves to `src`."""
    done = subprocess.run(
        [sys.executable, "-c", "import conveyor; print(conveyor.__file__)"],
        env=environment(src),
        capture_output=True,
        text=True,
        check=True,
    )
    found = Path(done.stdout.strip()).resolve()
    if not found.is_relative_to(src.resolve()):
        raise SystemExit(f"conveyor from {src} expected on PYTHONPATH, got {found}")


def run_once(bench: Bench, src: Path, extra: list[str], timeout: float) -> Figures:
    """Run one benchmark process on the tree `src`; its figures plus process CPU and wall."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, str(HERE / bench.script), *extra],
            stdout=out,
            stderr=err,
            env=environment(src),
            cwd=HERE.parent,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise RuntimeError(f"{bench.script} did not finish in {timeout:.0f} s") from None
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0)
        text = out.read().decode(errors="replace")
        if code != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip().splitlines()[-1:]
            raise RuntimeError(f"{bench.script} exited with {code}: {' '.join(tail)}")
    figures = bench.parse(text)
    if not figures:
        raise RuntimeError(f"no figures found in the output of {bench.script}")
    figures[PROCESS_CPU] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    figures[PROCESS_WALL] = wall
    return figures


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def report(
    results: dict[str, dict[str, Runs]], flag: float
) -> tuple[list[str], list[dict[str, object]]]:
    """Markdown table lines and one record per figure."""
    lines = [
        "| benchmark | figure | before (runs) | after (runs) | before median | "
        "after median | after/before | worse | |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    records: list[dict[str, object]] = []
    for name, trees in results.items():
        bench = BENCHES[name]
        names: list[str] = []
        for runs in trees.values():
            for figures in runs.figures:
                names += [k for k in figures if k not in names]
        for figure in names:
            values = {
                tree: [f[figure] for f in runs.figures if figure in f]
                for tree, runs in trees.items()
            }
            b, a = median(values["before"]), median(values["after"])
            ratio = a / b if a is not None and b else None
            higher = figure in bench.higher_better
            worse = (1 / ratio if higher else ratio) if ratio else None
            baseline = any(figure.endswith(c) for c in bench.controls)
            control = baseline or figure == PROCESS_WALL
            mark = "control" if baseline else ""
            if worse is not None and worse > flag and not control:
                mark = f"**worse than {flag:.2f}**"
            lines.append(
                f"| {name} | {figure}{' (higher is better)' if higher else ''} | "
                f"{_join(values['before'])} | {_join(values['after'])} | {_fmt(b)} | "
                f"{_fmt(a)} | {_fmt(ratio, 2)} | {_fmt(worse, 2)} | {mark} |"
            )
            records.append(
                {"benchmark": name, "figure": figure, "before": values["before"],
                 "after": values["after"], "ratio": ratio, "worse": worse,
                 "higher_is_better": higher, "flagged": mark.startswith("**")}
            )  # fmt: skip
        loads = {tree: median(runs.loads) for tree, runs in trees.items()}
        fails = {tree: runs.failures for tree, runs in trees.items()}
        lines.append(
            f"| {name} | load average at start (median) | | | {_fmt(loads['before'])} | "
            f"{_fmt(loads['after'])} | | | failed runs {fails['before']} / {fails['after']} |"
        )
    return lines, records


def _fmt(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return "-"
    if digits is not None:
        return f"{value:.{digits}f}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _join(values: list[float]) -> str:
    return ", ".join(_fmt(v) for v in values) or "-"


def _utc_today_at(hh_mm: str) -> float:
    """The epoch seconds of today's HH:MM in UTC."""
    hour, minute = (int(part) for part in hh_mm.split(":"))
    now = dt.datetime.now(dt.UTC)
    return now.replace(hour=hour, minute=minute, second=0, microsecond=0).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="src folder of the old tree")
    parser.add_argument("--after", type=Path, default=HERE.parent / "src")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=list(BENCHES), default=list(BENCHES))
    parser.add_argument("--flag", type=float, default=1.10)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument(
        "--stop-by",
        help="UTC time HH:MM: start no before/after pair that its last runs say ends later",
    )
    for name in BENCHES:
        parser.add_argument(f"--{name}-args", default="", help=f"extra arguments for {name}")
    args = parser.parse_args()
    trees = {"before": args.before, "after": args.after}
    for src in trees.values():
        check_tree(src)
    results = {name: {tree: Runs() for tree in trees} for name in args.only}
    started = time.time()
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
        f"before={args.before} after={args.after}; {args.rounds} rounds; "
        f"extra args: " + "; ".join(f"{n} {getattr(args, n + '_args')!r}" for n in args.only),
        flush=True,
    )
    stop_by = _utc_today_at(args.stop_by) if args.stop_by else None
    for round_no in range(args.rounds):
        order = ["before", "after"] if round_no % 2 == 0 else ["after", "before"]
        for name in args.only:
            extra = shlex.split(getattr(args, f"{name}_args"))
            walls = [f[PROCESS_WALL] for r in results[name].values() for f in r.figures[-1:]]
            if stop_by is not None and walls and time.time() + sum(walls) > stop_by:
                print(f"round {round_no + 1} {name}: skipped (would end after {args.stop_by})")
                continue
            for tree in order:
                runs = results[name][tree]
                load = os.getloadavg()[0]
                try:
                    figures = run_once(BENCHES[name], trees[tree], extra, args.timeout)
                except (RuntimeError, ValueError, SyntaxError) as exc:
                    runs.failures += 1
                    print(f"round {round_no + 1} {name} {tree}: FAILED: {exc}", flush=True)
                    continue
                runs.figures.append(figures)
                runs.loads.append(load)
                shown = ", ".join(f"{k} {_fmt(v)}" for k, v in figures.items())
                print(f"round {round_no + 1} {name} {tree} (load {load:.1f}): {shown}", flush=True)
    lines, records = report(results, args.flag)
    print(
        f"\n{args.rounds} rounds in {(time.time() - started) / 60:.1f} min; "
        f"load average at the end {os.getloadavg()[0]:.2f}"
    )
    print("\n".join(lines))
    if args.json_out:
        tmp = args.json_out.with_name(args.json_out.name + ".tmp")
        tmp.write_text(json.dumps(records, indent=1))
        os.replace(tmp, args.json_out)


if __name__ == "__main__":
    main()

"""`conveyor run` without typer (cli/run_command.py) is the typer command, option for option."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer
from typer.core import TyperArgument, TyperOption

from conveyor.cli import entry
from conveyor.cli import main as full_cli
from conveyor.cli.run_command import ROOT_OPTIONS, RUN_OPTIONS, OptionSpec, run_args

PIPELINES = textwrap.dedent(
    """
    from conveyor import pipeline, step

    @step
    def inc(x: int) -> int:
        return x + 1

    @step
    def check(x: int) -> int:
        if x > 100:
            raise ValueError(f"too big: {x}")
        return x

    @pipeline
    def chain(start: int = 0):
        return check(inc(inc(start)))
    """
)

# Root options the fast path leaves to the full CLI (with a server, or for help/version).
LEFT_TO_TYPER = {"--server", "--server-token-file", "--version", "--help"}


def _spec(param: object) -> OptionSpec:
    assert isinstance(param, TyperOption)
    assert not param.secondary_opts, param.name  # no --x/--no-x pairs in the table
    return OptionSpec(
        dest=str(param.name),
        names=tuple(param.opts),
        takes_value=not param.is_flag,
        multiple=param.multiple,
        integer=param.type_descriptor.annotation is int,
    )


def test_the_option_table_is_the_typer_command() -> None:
    group = typer.main.get_command(full_cli.app)
    root = {p.name: p for p in group.params}
    fast_root = {s.dest: s for s in ROOT_OPTIONS}
    assert {_spec(root[name]) for name in fast_root} == set(ROOT_OPTIONS)
    others = {opt for p in group.params if p.name not in fast_root for opt in p.opts}
    assert others | {"--help"} == LEFT_TO_TYPER
    run = group.commands["run"]  # type: ignore[attr-defined]
    arguments = [p for p in run.params if isinstance(p, TyperArgument)]
    assert [(p.name, p.nargs, p.required) for p in arguments] == [("target", 1, True)]
    options = [p for p in run.params if isinstance(p, TyperOption)]
    assert {_spec(p) for p in options} == set(RUN_OPTIONS)
    # Every keyword run_args produces is a parameter of the typer command (or a root one).
    parsed = run_args(["run", "t.py:p", "-q"])
    assert parsed is not None
    assert set(parsed) == {p.name for p in run.params} | set(fast_root)


@pytest.mark.parametrize(
    "argv",
    [
        ["run"],
        ["run", "--help"],
        ["run", "chain.py:chain", "-h"],
        ["run", "a.py:p", "b.py:p"],
        ["run", "chain.py:chain", "--max-workers", "two"],
        ["run", "chain.py:chain", "--max-workers", "-1"],
        ["run", "chain.py:chain", "--max-workers"],
        ["run", "chain.py:chain", "-qp", "start=1"],
        ["run", "chain.py:chain", "-pstart=1"],
        ["run", "chain.py:chain", "--quiet=1"],
        ["run", "chain.py:chain", "--no-cach"],
        ["run", "chain.py:chain", "--executor", "threads", "--executor", "inline"],
        ["run", "chain.py:chain", "--", "-q"],
        ["run", "chain.py:chain", "--db-url", "sqlite:///x.db"],
        ["--server", "http://localhost:8000", "run", "chain.py:chain"],
        ["--version", "run", "chain.py:chain"],
        ["--db-url", "run"],
        ["runs", "list"],
        ["task", "run", "chain.py:chain", "--run-key", "k", "--node", "inc"],
    ],
)
def test_anything_unusual_goes_to_the_typer_cli(argv: list[str]) -> None:
    assert run_args(argv) is None


def test_the_usual_forms_are_parsed_like_click_parses_them() -> None:
    assert run_args(
        [
            "--db-url=sqlite:///a.db",
            "--artifact-url",
            "arts",
            "run",
            "-p",
            "start=-1",
            "chain.py:chain",
            "--param=x=2",
            "--max-workers",
            "3",
            "--executor=threads:2",
            "-q",
            "--no-cache",
        ]
    ) == {
        "db_url": "sqlite:///a.db",
        "artifact_url": "arts",
        "target": "chain.py:chain",
        "param": ["start=-1", "x=2"],
        "executor": "threads:2",
        "max_workers": 3,
        "no_cache": True,
        "quiet": True,
        "json_out": False,
    }
    # A root option whose value is the word "run" is a value, as for click.
    parsed = run_args(["--db-url", "run", "run", "t.py:p"])
    assert parsed is not None and parsed["db_url"] == "run" and parsed["target"] == "t.py:p"


def _normalized(text: str) -> str:
    text = re.sub(r"\b[0-9A-Z]{26}\b", "RUNID", text)
    return re.sub(r"\d+(\.\d+)? (ms|s|min)\b", "T", text)


def _invoke(
    cli: str,
    project: Path,
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str, str]:
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "argv", ["conveyor", *argv])
    code: int | str | None = 0
    try:
        entry.main() if cli == "fast" else full_cli.main()
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert isinstance(code, int) or code is None
    # The folders "fast" and "full" have names of one length: rich wraps both alike.
    out, err = (text.replace(str(project), "PROJECT") for text in (out, err))
    return int(code or 0), _normalized(out), _normalized(err)


CASES = [
    ["run", "chain.py:chain", "-q"],
    ["run", "chain.py:chain", "-p", "start=5", "--executor", "threads", "--max-workers", "2"],
    ["run", "chain.py:chain", "--param=start=7", "--no-cache"],
    # {project}: the project folder (a relative URL would name one file per folder, but
    # a process opens a store URL once).
    ["--db-url", "sqlite:///{project}/other.db", "run", "chain.py:chain", "-q", "--no-cache"],
    ["run", "chain.py:chain", "-p", "start=500", "-q"],  # a step fails: exit 1
    ["run", "chain.py:chain", "-p", "nope=1"],  # not a parameter: exit 2
    ["run", "chain.py:chain", "-p", "start=abc"],  # not an int: exit 2
    ["run", "missing.py:chain", "-q"],  # no such file: exit 2
    ["run", "chain.py:nothing"],  # no such pipeline: exit 2
    ["run", "chain.py:chain", "--executor", "bogus", "-q"],  # exit 1
    ["--db-url", "mysql://u:secret@h/db", "run", "chain.py:chain", "-q"],  # bad store URL
]


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(c) for c in CASES])
def test_the_fast_path_gives_what_the_typer_cli_gives(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_args(argv) is not None
    results = []
    for cli in ("fast", "full"):
        project = tmp_path / cli
        project.mkdir()
        (project / "conveyor.toml").write_text("[conveyor]\n")
        (project / "chain.py").write_text(PIPELINES)
        args = [a.replace("{project}", str(project)) for a in argv]
        results.append(_invoke(cli, project, args, monkeypatch, capsys))
    fast, full = results
    assert fast == full
    assert "secret" not in fast[2]


def test_json_output_is_the_same_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    records = []
    for cli in ("fast", "full"):
        project = tmp_path / cli
        project.mkdir()
        (project / "conveyor.toml").write_text("[conveyor]\n")
        (project / "chain.py").write_text(PIPELINES)
        code, out, err = _invoke(
            cli, project, ["run", "chain.py:chain", "--json"], monkeypatch, capsys
        )
        assert (code, err) == (0, "")
        record = json.loads(out)
        records.append(
            (sorted(record), record["status"], [(s["name"], s["status"]) for s in record["steps"]])
        )
    assert records[0] == records[1]
    assert records[0][1] == "completed" and len(records[0][2]) == 3


PROBE = """
import atexit, sys
heavy = ("typer", "click", "pydantic", "rich")
atexit.register(lambda: print(sorted({m.split(".")[0] for m in sys.modules} & set(heavy))))
sys.argv = ["conveyor", *sys.argv[1:]]
from conveyor.cli.entry import main
main()
"""


@pytest.mark.slow
def test_a_quiet_run_imports_no_cli_framework(tmp_path: Path) -> None:
    (tmp_path / "conveyor.toml").write_text("[conveyor]\n")
    (tmp_path / "chain.py").write_text(PIPELINES)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "run", "chain.py:chain", "-q", "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"

"""The README's tutorial works as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
CONVEYOR = str(Path(sys.executable).with_name("conveyor"))


def test_readme_opens_with_the_two_commands() -> None:
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make demo", "make test"]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci


def test_tutorial_pipeline_runs_and_caches(tmp_path: Path) -> None:
    text = README.read_text()
    section = text.split("## A five-minute tutorial", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    (tmp_path / "conveyor.toml").write_text("[conveyor]\n")
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "wine.py").write_text(code.group(1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}

    def run(*params: str) -> dict:  # type: ignore[type-arg]
        args = [CONVEYOR, "run", "pipelines/wine.py:wine", "--json"]
        for param in params:
            args += ["-p", param]
        result = subprocess.run(
            args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    first = run()
    assert len(first["steps"]) == 9
    again = run("seed=1")
    hits = {s["name"]: s["cache_hit"] for s in again["steps"]}
    assert hits.pop("load") is True
    assert not any(hits.values())

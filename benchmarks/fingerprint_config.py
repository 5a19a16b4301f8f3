"""Fingerprinting a step whose module holds a 1,000-entry config dict (issue 11).

Prints the time to compute the step's code fingerprint (its function, the helpers it
calls and the config dict by content) and, as the baseline measured in the same run,
the time to read and sha256 the module's source file: what a source-only fingerprint
(which misses values imported from other modules and redefinitions) costs at least.
Target: under 2 ms.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import tempfile
import textwrap
from pathlib import Path

from _common import best_of

from conveyor.execution.fingerprint import ProjectScope, fingerprint_step

ENTRIES = 1000


def write_project(root: Path) -> str:
    package = root / "bench_config_project"
    package.mkdir()
    (package / "__init__.py").write_text("")
    entries = ",\n".join(
        f'    "feature_{i}": {{"threshold": {i / 7:.6f}, "columns": ["c{i}", "d{i}"], '
        f'"enabled": {i % 2 == 0}, "weight": {i}}}'
        for i in range(ENTRIES)
    )
    (package / "config.py").write_text(f"CONFIG = {{\n{entries},\n}}\n")
    (package / "steps.py").write_text(
        textwrap.dedent(
            """
            from conveyor import step
            from .config import CONFIG

            def active(config):
                return [k for k, v in config.items() if v["enabled"]]

            @step
            def score(x: float) -> float:
                return sum(CONFIG[k]["threshold"] for k in active(CONFIG)) * x
            """
        )
    )
    return "bench_config_project.steps"


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="conveyor-bench-fp-"))
    sys.path.insert(0, str(root))
    module = importlib.import_module(write_project(root))
    source = root / "bench_config_project" / "config.py"
    scope = ProjectScope.create(root)
    fingerprint_step(module.score, scope)  # warm the per-code-object memo, as a second run would

    def source_hash() -> None:
        hashlib.sha256(source.read_bytes()).hexdigest()

    def fingerprint() -> None:
        fingerprint_step(module.score, ProjectScope.create(root))

    base_best, base_median = best_of(200, source_hash)
    best, median = best_of(200, fingerprint)
    print(f"module source: {source.stat().st_size:,} bytes, {ENTRIES} config entries")
    print(
        f"baseline, sha256 of the module source: best {base_best * 1000:.3f} ms, "
        f"median {base_median * 1000:.3f} ms"
    )
    print(
        f"fingerprint of the step (code + CONFIG by content): best {best * 1000:.3f} ms, "
        f"median {median * 1000:.3f} ms (target < 2 ms); ratio to baseline {best / base_best:.1f}x"
    )


if __name__ == "__main__":
    main()

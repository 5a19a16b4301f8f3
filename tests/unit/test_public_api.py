"""The curated public API: exactly these names, each resolving to a real object."""

from __future__ import annotations

import subprocess
import sys

import conveyor

PUBLIC = {
    "ConveyorError",
    "Gate",
    "Model",
    "Monitor",
    "Pipeline",
    "Run",
    "RunFailedError",
    "Settings",
    "Step",
    "StepFailedError",
    "__version__",
    "evaluate",
    "get_run",
    "load_model",
    "load_settings",
    "log_artifact",
    "log_metrics",
    "log_params",
    "on_challenger_better",
    "on_decay",
    "on_drift",
    "on_new_data",
    "on_schedule",
    "pipeline",
    "register_materializer",
    "register_model",
    "set_tags",
    "step",
    "tune",
}


def test_all_is_pinned() -> None:
    assert set(conveyor.__all__) == PUBLIC


def test_every_public_name_resolves() -> None:
    for name in PUBLIC:
        assert getattr(conveyor, name) is not None, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        conveyor.no_such_thing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_is_light() -> None:
    code = (
        "import sys, conveyor; conveyor.step; conveyor.pipeline; "
        "heavy = [m for m in ('pandas', 'sklearn', 'scipy', 'sqlalchemy', 'numpy', 'pyarrow') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

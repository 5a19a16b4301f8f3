"""`conveyor models ...` end to end through the real root app and a real SQLite store."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.config import Settings
from conveyor.registry import Registry

runner = CliRunner()


def _invoke(settings: Settings, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app, ["--db-url", settings.db_url, "--artifact-url", settings.artifact_url, *args]
    )
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def test_models_commands(settings: Settings, registry: Registry, models) -> None:
    for model in models:
        registry.register(model, "churn", description="churn model")
    code, out = _invoke(
        settings,
        "models",
        "promote",
        "churn",
        "2",
        "--alias",
        "production",
        "--reason",
        "best auc",
        "--actor",
        "ana",
    )
    assert code == 0, out
    assert "nothing -> version 2" in out
    code, out = _invoke(settings, "models", "promote", "churn", "3", "--alias", "production")
    assert code == 0 and "version 2 -> version 3" in out

    code, out = _invoke(settings, "models", "list", "--json")
    assert code == 0
    assert json.loads(out)[0]["aliases"] == {"production": 3}

    code, out = _invoke(settings, "models", "show", "churn@production", "--json")
    shown = json.loads(out)
    assert (shown["version"], shown["aliases"], shown["flavor"]) == (3, ["production"], "sklearn")
    code, out = _invoke(settings, "models", "show", "churn")
    assert code == 0 and "production" in out

    code, out = _invoke(settings, "models", "rollback", "churn", "production", "--reason", "oops")
    assert code == 0 and "version 3 -> version 2" in out

    code, out = _invoke(settings, "models", "history", "churn", "--json")
    events = json.loads(out)
    assert [e["action"] for e in events[:3]] == ["rollback", "promote", "promote"]
    assert events[2]["actor"] == "ana" and events[2]["reason"] == "best auc"

    code, out = _invoke(settings, "models", "lineage", "churn/2")
    assert code == 0 and "outside a pipeline run" in out


def test_models_command_errors_are_clean(settings: Settings, registry: Registry, models) -> None:
    registry.register(models[0], "churn")
    code, out = _invoke(settings, "models", "promote", "churn", "5", "--alias", "production")
    assert code == 1 and "no version 5" in out and "Traceback" not in out
    code, out = _invoke(settings, "models", "promote", "churn", "1", "--alias", "Prod!")
    assert code == 1 and "Invalid alias" in out
    code, out = _invoke(settings, "models", "show", "chrun")
    assert code == 1 and "Did you mean 'churn'" in out


def test_cli_module_imports_no_heavy_libraries() -> None:
    code = (
        "import sys; import conveyor.cli.models; "
        "heavy = [m for m in ('pandas', 'sklearn', 'optuna', 'sqlalchemy') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

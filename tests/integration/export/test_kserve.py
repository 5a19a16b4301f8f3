"""The KServe manifests of `conveyor export k8s`, checked against the `kserve` wheel's models.

The wheel (about 0.6 MB) is read as text, never installed; see `kserve_schema`. `make test`
fetches it at set-up time (``pip download kserve==VERSION --no-deps`` into the folder named
by ``CONVEYOR_TEST_KSERVE_WHEELS``); without that variable the test downloads it itself.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conveyor.cli.main import app
from tests.conftest import IN_CI
from tests.integration.export.kserve_schema import Model, load_models, validate

KSERVE = "0.21.0"
runner = CliRunner()


@pytest.fixture(scope="session")
def kserve_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Model]:
    import kubernetes

    prepared = os.environ.get("CONVEYOR_TEST_KSERVE_WHEELS")
    if prepared:
        found = sorted(Path(prepared).glob(f"kserve-{KSERVE}-*.whl"))
        if not found:
            pytest.fail(f"no kserve=={KSERVE} wheel in {prepared}; `make test` downloads it")
        client_models = Path(kubernetes.__file__).parent / "client" / "models"
        return load_models(found[0], client_models)
    folder = tmp_path_factory.mktemp("kserve-wheel")
    pip = [sys.executable, "-m", "pip", "download", f"kserve=={KSERVE}", "--no-deps"]
    done = subprocess.run(
        [*pip, "--only-binary", ":all:", "--quiet", "-d", str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    wheels = sorted(folder.glob("kserve-*.whl"))
    if done.returncode != 0 or not wheels:
        message = f"pip could not download kserve=={KSERVE}: {done.stderr.strip()[-500:]}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    client_models = Path(kubernetes.__file__).parent / "client" / "models"
    return load_models(wheels[0], client_models)


@pytest.fixture
def manifests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, object]]:
    (tmp_path / "conveyor.toml").write_text("[conveyor]\n")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        app, ["export", "k8s", "churn@production", "-o", "deploy", "--image", "ml:1"]
    )
    assert result.exit_code == 0, result.output
    return {
        name: yaml.safe_load((tmp_path / "deploy" / name).read_text())
        for name in ("kserve-runtime.yaml", "kserve-inferenceservice.yaml")
    }


def test_kserve_manifests_match_the_kserve_api_models(
    kserve_models: dict[str, Model], manifests: dict[str, dict[str, object]]
) -> None:
    assert "V1alpha1ServingRuntime" in kserve_models and "V1Container" in kserve_models
    for name, document in manifests.items():
        assert validate(document, kserve_models) == [], name


def test_the_check_rejects_what_kserve_would(
    kserve_models: dict[str, Model], manifests: dict[str, dict[str, object]]
) -> None:
    runtime = copy.deepcopy(manifests["kserve-runtime.yaml"])
    spec = runtime["spec"]
    assert isinstance(spec, dict)
    spec["protocolVersion"] = spec.pop("protocolVersions")  # a typo of the field
    spec["containers"][0]["readinessProbe"]["httpGet"]["path"] = 7
    del spec["containers"][0]["name"]
    assert validate(runtime, kserve_models) == [
        ".spec.containers[0].name: required by V1Container",
        ".spec.containers[0].readinessProbe.httpGet.path: expected str, got int",
        ".spec.protocolVersion: not a field of V1alpha1ServingRuntimeSpec",
    ]
    service = copy.deepcopy(manifests["kserve-inferenceservice.yaml"])
    del service["spec"]
    service["kind"] = "InferenceServise"
    assert validate(service, kserve_models) == [
        "kind: no KServe type V1beta1InferenceServise in the wheel"
    ]

"""Exported workflows and manifests, checked by the orchestrators' own SDKs and schemas."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from conveyor.cli.main import app

runner = CliRunner()
TARGET = "tests.unit.export.flow_for_tests:flow"
LONG = "tests.unit.export.flow_for_tests:long_chain"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "conveyor.toml").write_text(
        "[conveyor]\n"
        "db_url = 'postgresql+psycopg://ml@db.internal/conveyor'\n"
        "artifact_url = 's3://ml-artifacts/conveyor'\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVEYOR_DB_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_ARTIFACT_URL", raising=False)
    return tmp_path


def export(*args: str) -> str:
    result = runner.invoke(app, ["export", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_local_stores_are_refused_unless_allowed(tmp_path: Path, monkeypatch: Any) -> None:
    (tmp_path / "conveyor.toml").write_text("[conveyor]\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVEYOR_DB_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_ARTIFACT_URL", raising=False)
    result = runner.invoke(app, ["export", "airflow", TARGET, "-o", "dag.py"])
    assert result.exit_code == 2
    assert "SQLite file and the artifact store is a local folder" in result.output
    assert "--allow-local" in result.output
    assert not (tmp_path / "dag.py").exists()
    export("airflow", TARGET, "-o", "dag.py", "--allow-local")
    assert (tmp_path / "dag.py").is_file()


def test_airflow_dag_imports_only_airflow_and_maps_everything(project: Path) -> None:
    export("airflow", TARGET, "-o", "dag.py", "-p", "n=6")
    source = (project / "dag.py").read_text()
    tree = ast.parse(source)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "airflow", "datetime", "json", "os", "subprocess"}
    assert "schedule='0 3 * * *'" in source
    assert "'n': Param(6, type=['null', 'integer'])" in source
    assert "'scale': Param(1.0, type=['null', 'number'])" in source
    assert "pool='gpu'" in source and "queue='ml'" in source
    assert ".expand(env=w_t_square)" in source
    assert "[t_load] >> w_t_square" in source and "[t_square] >> t_total" in source
    assert "trigger_rule='all_done'" in source
    assert "db.internal" not in source and "s3://" not in source  # no store URL embedded


def test_airflow_kubernetes_operator_maps_resources(project: Path) -> None:
    result = runner.invoke(
        app, ["export", "airflow", TARGET, "-o", "dag.py", "--operator", "kubernetes"]
    )
    assert result.exit_code == 2 and "needs --image" in result.output
    export("airflow", TARGET, "-o", "dag.py", "--operator", "kubernetes", "--image", "ml:1")
    source = (project / "dag.py").read_text()
    compile(source, "dag.py", "exec")
    assert "KubernetesPodOperator.partial(task_id='square'" in source
    assert "requests={'cpu': '2', 'memory': '4Gi'}" in source
    assert "'nvidia.com/gpu': '1'" in source


def test_two_hundred_steps_stay_small(project: Path) -> None:
    sizes = {}
    for kind, extra in (
        ("airflow", []),
        ("argo", ["--image", "ml:1"]),
        ("kfp", ["--image", "ml:1"]),
    ):
        out = project / f"long-{kind}.out"
        export(kind, LONG, "-o", str(out), *extra)
        sizes[kind] = out.stat().st_size
    assert all(size < 100_000 for size in sizes.values()), sizes


def test_argo_workflow_validates_against_the_argo_schema(project: Path) -> None:
    from hera.workflows.models import CronWorkflow

    export("argo", TARGET, "-o", "wf.yaml", "--image", "ml:1", "--stores-secret", "stores")
    document = yaml.safe_load((project / "wf.yaml").read_text())
    assert document["kind"] == "CronWorkflow"  # the pipeline has a schedule
    CronWorkflow.model_validate(document)
    spec = document["spec"]["workflowSpec"]
    assert document["spec"]["schedules"] == ["0 3 * * *"]
    tasks = {t["name"]: t for t in spec["templates"][0]["dag"]["tasks"]}
    assert tasks["square"]["withParam"] == "{{tasks.square-width.outputs.result}}"
    assert tasks["square-width"]["dependencies"] == ["load"]
    assert tasks["total"]["dependencies"] == ["square"]
    assert spec["onExit"] == "conveyor-finish"
    templates = {t["name"]: t for t in spec["templates"]}
    square = templates[tasks["square"]["template"]]["container"]
    assert square["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert square["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}
    assert square["envFrom"] == [{"secretRef": {"name": "stores"}}]
    assert square["command"] == ["conveyor"]  # no shell: values are arguments
    start = templates["conveyor-start"]["container"]["args"]
    assert "n={{workflow.parameters.n}}" in start
    params = {p["name"]: p["value"] for p in spec["arguments"]["parameters"]}
    assert params == {"n": "4", "scale": "1.0"}


def test_argo_without_schedule_is_a_workflow_template(project: Path) -> None:
    from hera.workflows.models import WorkflowTemplate

    export("argo", LONG, "-o", "wf.yaml", "--image", "ml:1", "-p", "n=3")
    document = yaml.safe_load((project / "wf.yaml").read_text())
    assert document["kind"] == "WorkflowTemplate"
    WorkflowTemplate.model_validate(document)
    templates = [t for t in document["spec"]["templates"] if t["name"].startswith("step-")]
    assert len(templates) == 1  # one template per resource profile, not per step


def test_kfp_spec_loads_and_recompiles_with_the_kfp_sdk(project: Path) -> None:
    from kfp import compiler, components

    export("kfp", TARGET, "-o", "pipeline.yaml", "--image", "ml:1")
    loaded = components.load_component_from_file(str(project / "pipeline.yaml"))
    assert loaded.name == "flow"
    assert set(loaded.component_spec.inputs) == {"n", "scale"}
    compiler.Compiler().compile(loaded, str(project / "again.yaml"))
    document = yaml.safe_load((project / "pipeline.yaml").read_text())
    inner = document["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    assert inner["for-loop-1"]["parameterIterator"]["items"] == {
        "inputParameter": "pipelinechannel--square-width-Output"
    }
    assert all(
        task.get("cachingOptions") == {} for name, task in inner.items() if name != "for-loop-1"
    )  # KFP caching off: conveyor's cache decides
    finish = document["root"]["dag"]["tasks"]["conveyor-finish"]
    assert finish["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    executors = document["deploymentSpec"]["executors"]
    gpu = [e for e in executors.values() if "accelerator" in e["container"].get("resources", {})]
    assert gpu and gpu[0]["container"]["resources"]["resourceMemoryLimit"] == "4Gi"


def test_k8s_manifests_validate_against_the_kubernetes_schemas(project: Path) -> None:
    import kubernetes_validate

    export("k8s", "churn@production", "-o", "deploy", "--image", "ml:1", "--replicas", "3")
    folder = project / "deploy"
    files = sorted(p.name for p in folder.iterdir())
    assert files == [
        "deployment.yaml",
        "hpa.yaml",
        "kserve-inferenceservice.yaml",
        "kserve-runtime.yaml",
        "service.yaml",
    ]
    for name in ("deployment.yaml", "service.yaml", "hpa.yaml"):
        document = yaml.safe_load((folder / name).read_text())
        kubernetes_validate.validate(document, "1.30", strict=True)
    deployment = yaml.safe_load((folder / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["args"][:2] == ["serve", "churn@production"]
    assert "--token-file" in container["args"]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert volumes[0]["secret"]["secretName"] == "conveyor-serving-token"
    template = deployment["spec"]["template"]["metadata"]["annotations"]
    assert template["prometheus.io/path"] == "/metrics"
    runtime = yaml.safe_load((folder / "kserve-runtime.yaml").read_text())
    assert runtime["spec"]["protocolVersions"] == ["v2"]
    service = yaml.safe_load((folder / "kserve-inferenceservice.yaml").read_text())
    assert service["spec"]["predictor"]["model"]["runtime"] == runtime["metadata"]["name"]
    text = "".join(p.read_text() for p in folder.iterdir())
    assert "db.internal" not in text  # stores come from a Secret


def test_k8s_errors(project: Path) -> None:
    result = runner.invoke(app, ["export", "k8s", "churn@production\n", "-o", "d"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    result = runner.invoke(app, ["export", "k8s", "churn@production", "-o", "d", "--name", "A_b"])
    assert result.exit_code == 1 and "not a Kubernetes name" in result.output

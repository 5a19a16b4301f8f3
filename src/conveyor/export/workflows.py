"""`conveyor export argo` and `conveyor export kfp`: container workflows over `conveyor task`.

Both formats share one container template per resource profile (not one per step), so a
200-step pipeline stays a few tens of KB. Node names, the target and parameter values
reach the container as arguments or environment values, never as shell code. Store URLs
come from a Kubernetes Secret (``--stores-secret``, keys ``CONVEYOR_DB_URL`` and
``CONVEYOR_ARTIFACT_URL``), so no credential is ever written into the exported file.
KFP's own caching is turned off for every task: conveyor's cache decides, and a task KFP
skipped would leave no step run and no lineage.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from conveyor.export.airflow import _quantity
from conveyor.export.plan import FINISH, START, ExportPlan


def _run_args(target: str, key: str, node: str, index: str) -> list[str]:
    # No shell: every value is one argument, so no name or parameter can inject code.
    return ["task", "run", target, "--run-key", key, "--node", node, "--index", index]


def _resources(res: Mapping[str, Any]) -> dict[str, Any]:
    requests: dict[str, str] = {}
    for key, k8s in (("cpus", "cpu"), ("memory", "memory")):
        if res.get(key) is not None:
            requests[k8s] = _quantity(res[key])
    limits = dict(requests)
    if res.get("gpus"):
        limits["nvidia.com/gpu"] = str(int(res["gpus"]))
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _profile(res: Mapping[str, Any]) -> str:
    data = json.dumps(_resources(res), sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:8]


def _k8s_name(text: str) -> str:
    return text.lower().replace("_", "-")[:63].strip("-") or "pipeline"


# ---------------------------------------------------------------------------- Argo
def render_argo(
    plan: ExportPlan, *, image: str, stores_secret: str = "conveyor-stores", workdir: str = "/app"
) -> dict[str, Any]:
    """An Argo WorkflowTemplate (as a dict; write it as YAML)."""
    env_from = [{"secretRef": {"name": stores_secret}}]
    key = "{{workflow.uid}}"

    def container(args: list[str], res: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "image": image,
            "command": ["conveyor"],
            "args": args,
            "workingDir": workdir,
            "envFrom": env_from,
        }
        resources = _resources(res)
        if resources:
            body["resources"] = resources
        return body

    templates: list[dict[str, Any]] = []
    profiles: dict[str, str] = {}
    for item in plan.tasks:
        name = f"step-{_profile(item.resources)}"
        if name in profiles.values():
            continue
        profiles[_profile(item.resources)] = name
        templates.append(
            {
                "name": name,
                "inputs": {"parameters": [{"name": "node"}, {"name": "index", "value": ""}]},
                "container": container(
                    _run_args(
                        plan.target,
                        key,
                        "{{inputs.parameters.node}}",
                        "{{inputs.parameters.index}}",
                    ),
                    item.resources,
                ),
            }
        )
    templates.append(
        {
            "name": "conveyor-width",
            "inputs": {"parameters": [{"name": "node"}]},
            "container": container(
                [
                    "task",
                    "width",
                    plan.target,
                    "--run-key",
                    key,
                    "--node",
                    "{{inputs.parameters.node}}",
                ],
                {},
            ),
        }
    )
    params = [f"{k}={{{{workflow.parameters.{k}}}}}" for k in plan.params]
    templates.append(
        {
            "name": START,
            "container": container(
                [
                    "task",
                    "start",
                    plan.target,
                    "--run-key",
                    key,
                    "--orchestrator",
                    "argo",
                    "--tag",
                    "argo.workflow={{workflow.name}}",
                    *params,
                ],
                {},
            ),
        }
    )
    templates.append(
        {
            "name": FINISH,
            "container": container(["task", "finish", plan.target, "--run-key", key], {}),
        }
    )
    tasks: list[dict[str, Any]] = [{"name": START, "template": START}]
    for item in plan.tasks:
        template = profiles[_profile(item.resources)]
        node_param = {"name": "node", "value": item.node}
        if item.dynamic:
            tasks.append(
                {
                    "name": item.width_id,
                    "template": "conveyor-width",
                    "dependencies": list(item.upstream),
                    "arguments": {"parameters": [node_param]},
                }
            )
            tasks.append(
                {
                    "name": item.task_id,
                    "template": template,
                    "dependencies": [item.width_id],
                    "withParam": f"{{{{tasks.{item.width_id}.outputs.result}}}}",
                    "arguments": {
                        "parameters": [node_param, {"name": "index", "value": "{{item}}"}]
                    },
                }
            )
        else:
            tasks.append(
                {
                    "name": item.task_id,
                    "template": template,
                    "dependencies": list(item.upstream),
                    "arguments": {"parameters": [node_param]},
                }
            )
    templates.insert(0, {"name": "main", "dag": {"tasks": tasks}})
    spec: dict[str, Any] = {
        "entrypoint": "main",
        "onExit": FINISH,
        "arguments": {
            "parameters": [{"name": k, "value": _text(v)} for k, v in plan.params.items()]
        },
        "templates": templates,
    }
    workflow: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate" if plan.schedule is None else "CronWorkflow",
        "metadata": {
            "name": _k8s_name(plan.name),
            "labels": {"app.kubernetes.io/managed-by": "conveyor"},
            "annotations": {"conveyor/target": plan.target},
        },
    }
    if plan.schedule is None:
        workflow["spec"] = spec
    else:
        workflow["spec"] = {
            "schedules": [plan.schedule],
            "timezone": "UTC",
            "concurrencyPolicy": "Forbid",
            "workflowSpec": spec,
        }
    return workflow


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# ---------------------------------------------------------------------------- KFP
_KFP_TYPES = {
    "integer": "NUMBER_INTEGER",
    "number": "NUMBER_DOUBLE",
    "boolean": "BOOLEAN",
    "string": "STRING",
    "array": "LIST",
}


def _constant(value: str) -> dict[str, Any]:
    return {"runtimeValue": {"constant": value}}


def _kfp_resources(res: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if res.get("cpus") is not None:
        out["resourceCpuLimit"] = _quantity(res["cpus"])
        out["resourceCpuRequest"] = _quantity(res["cpus"])
    if res.get("memory") is not None:
        out["resourceMemoryLimit"] = _quantity(res["memory"])
        out["resourceMemoryRequest"] = _quantity(res["memory"])
    if res.get("gpus"):
        out["accelerator"] = {"resourceType": "nvidia.com/gpu", "resourceCount": str(res["gpus"])}
    return out


def render_kfp(plan: ExportPlan, *, image: str) -> dict[str, Any]:
    """A KFP v2 pipeline spec (IR YAML as a dict)."""
    key = "{{$.pipeline_job_uuid}}"
    components: dict[str, Any] = {}
    executors: dict[str, Any] = {}

    def executor(name: str, args: list[str], res: Mapping[str, Any]) -> None:
        container: dict[str, Any] = {"image": image, "command": ["conveyor"], "args": args}
        resources = _kfp_resources(res)
        if resources:
            container["resources"] = resources
        executors[name] = {"container": container}

    def param(name: str) -> str:
        return f"{{{{$.inputs.parameters['{name}']}}}}"

    step_inputs = {
        "parameters": {
            "node": {"parameterType": "STRING"},
            "index": {"parameterType": "STRING", "defaultValue": "", "isOptional": True},
        }
    }
    for item in plan.tasks:
        profile = _profile(item.resources)
        if f"comp-step-{profile}" in components:
            continue
        components[f"comp-step-{profile}"] = {
            "executorLabel": f"exec-step-{profile}",
            "inputDefinitions": step_inputs,
        }
        executor(
            f"exec-step-{profile}",
            _run_args(plan.target, key, param("node"), param("index")),
            item.resources,
        )
    components["comp-conveyor-width"] = {
        "executorLabel": "exec-conveyor-width",
        "inputDefinitions": {"parameters": {"node": {"parameterType": "STRING"}}},
        # ``Output`` is the name the KFP compiler gives a component's single return value;
        # the SDK's local runner finds a ParallelFor's items only under that name.
        "outputDefinitions": {"parameters": {"Output": {"parameterType": "LIST"}}},
    }
    executor(
        "exec-conveyor-width",
        [
            "task",
            "width",
            plan.target,
            "--run-key",
            key,
            "--node",
            param("node"),
            "--output",
            "{{$.outputs.parameters['Output'].output_file}}",
        ],
        {},
    )
    pipeline_inputs = {
        k: {
            "parameterType": _KFP_TYPES.get(plan.param_types[k], "STRING"),
            **({"defaultValue": v, "isOptional": True} if v is not None else {}),
        }
        for k, v in plan.params.items()
    }
    components["comp-conveyor-start"] = {
        "executorLabel": "exec-conveyor-start",
        "inputDefinitions": {"parameters": dict(pipeline_inputs)},
    }
    executor(
        "exec-conveyor-start",
        [
            "task",
            "start",
            plan.target,
            "--run-key",
            key,
            "--orchestrator",
            "kfp",
            "--tag",
            "kfp.pipeline_job={{$.pipeline_job_name}}",
            *(f"{k}={param(k)}" for k in plan.params),
        ],
        {},
    )
    components["comp-conveyor-finish"] = {"executorLabel": "exec-conveyor-finish"}
    executor("exec-conveyor-finish", ["task", "finish", plan.target, "--run-key", key], {})

    def no_cache(task: dict[str, Any]) -> dict[str, Any]:
        return {"cachingOptions": {}, **task}

    inner: dict[str, Any] = {
        START: no_cache(
            {
                "componentRef": {"name": "comp-conveyor-start"},
                "inputs": {
                    "parameters": {
                        k: {"componentInputParameter": f"pipelinechannel--{k}"} for k in plan.params
                    }
                },
                "taskInfo": {"name": START},
            }
        )
    }
    loops = 0
    loop_of: dict[str, str] = {}
    for item in plan.tasks:
        profile = _profile(item.resources)
        upstream = [loop_of.get(u, u) for u in item.upstream]
        if not item.dynamic:
            inner[item.task_id] = no_cache(
                {
                    "componentRef": {"name": f"comp-step-{profile}"},
                    "dependentTasks": upstream,
                    "inputs": {"parameters": {"node": _constant(item.node)}},
                    "taskInfo": {"name": item.task_id},
                }
            )
            continue
        loops += 1
        loop = f"for-loop-{loops}"
        loop_of[item.task_id] = loop
        inner[item.width_id] = no_cache(
            {
                "componentRef": {"name": "comp-conveyor-width"},
                "dependentTasks": upstream,
                "inputs": {"parameters": {"node": _constant(item.node)}},
                "taskInfo": {"name": item.width_id},
            }
        )
        channel = f"pipelinechannel--{item.width_id}-Output"
        components[f"comp-{loop}"] = {
            "dag": {
                "tasks": {
                    item.task_id: no_cache(
                        {
                            "componentRef": {"name": f"comp-step-{profile}"},
                            "inputs": {
                                "parameters": {
                                    "node": _constant(item.node),
                                    "index": {"componentInputParameter": f"{channel}-loop-item"},
                                }
                            },
                            "taskInfo": {"name": item.task_id},
                        }
                    )
                }
            },
            "inputDefinitions": {
                "parameters": {
                    channel: {"parameterType": "LIST"},
                    f"{channel}-loop-item": {"parameterType": "STRING"},
                }
            },
        }
        inner[loop] = {
            "componentRef": {"name": f"comp-{loop}"},
            "dependentTasks": [item.width_id],
            "inputs": {
                "parameters": {
                    channel: {
                        "taskOutputParameter": {
                            "outputParameterKey": "Output",
                            "producerTask": item.width_id,
                        }
                    }
                }
            },
            "parameterIterator": {
                "itemInput": f"{channel}-loop-item",
                "items": {"inputParameter": channel},
            },
            "taskInfo": {"name": loop},
        }
    components["comp-exit-handler-1"] = {
        "dag": {"tasks": inner},
        "inputDefinitions": {
            "parameters": {
                f"pipelinechannel--{k}": {
                    "parameterType": _KFP_TYPES.get(plan.param_types[k], "STRING")
                }
                for k in plan.params
            }
        },
    }
    root_tasks = {
        "exit-handler-1": {
            "componentRef": {"name": "comp-exit-handler-1"},
            "inputs": {
                "parameters": {
                    f"pipelinechannel--{k}": {"componentInputParameter": k} for k in plan.params
                }
            },
            "taskInfo": {"name": "exit-handler-1"},
        },
        FINISH: no_cache(
            {
                "componentRef": {"name": "comp-conveyor-finish"},
                "dependentTasks": ["exit-handler-1"],
                "taskInfo": {"name": FINISH},
                "triggerPolicy": {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"},
            }
        ),
    }
    return {
        "components": components,
        "deploymentSpec": {"executors": executors},
        "pipelineInfo": {"name": _k8s_name(plan.name), "description": f"conveyor {plan.target}"},
        "root": {"dag": {"tasks": root_tasks}, "inputDefinitions": {"parameters": pipeline_inputs}},
        "schemaVersion": "2.1.0",
        "sdkVersion": "conveyor",
    }

"""`conveyor export k8s`: serving manifests for a registry reference.

What is written: a Deployment running ``conveyor serve REF`` (readiness on ``/readyz``,
liveness on ``/healthz``, a startup probe for the first load, the bearer token mounted from
a Secret, store URLs from another Secret), a Service with Prometheus scrape annotations,
a HorizontalPodAutoscaler, and a KServe ServingRuntime + InferenceService speaking the
Open Inference Protocol v2 the server already has. Secrets are referenced, never written:
the files hold no credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.export.airflow import _quantity

PORT = 8080
TOKEN_DIR = "/var/run/secrets/conveyor"


@dataclass(frozen=True)
class ServingOptions:
    """What the manifests are parameterised by (the CLI's options)."""

    ref: str
    image: str
    name: str
    namespace: str | None = None
    replicas: int = 2
    max_replicas: int = 10
    cpu: str = "1"
    memory: str = "1Gi"
    token_secret: str = "conveyor-serving-token"
    stores_secret: str = "conveyor-stores"
    target_cpu_utilization: int = 70


def _metadata(options: ServingOptions, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": options.name,
        "labels": {
            "app.kubernetes.io/name": options.name,
            "app.kubernetes.io/managed-by": "conveyor",
        },
        **extra,
    }
    if options.namespace:
        meta["namespace"] = options.namespace
    return meta


def _container(options: ServingOptions) -> dict[str, Any]:
    resources = {"cpu": _quantity(options.cpu), "memory": _quantity(options.memory)}
    return {
        "name": "server",
        "image": options.image,
        "command": ["conveyor"],
        "args": [
            "serve",
            options.ref,
            "--host",
            "0.0.0.0",
            "--port",
            str(PORT),
            "--token-file",
            f"{TOKEN_DIR}/token",
        ],
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "envFrom": [{"secretRef": {"name": options.stores_secret}}],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 2,
            "failureThreshold": 60,
        },
        "resources": {"requests": resources, "limits": resources},
        "volumeMounts": [{"name": "token", "mountPath": TOKEN_DIR, "readOnly": True}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def _token_volume(options: ServingOptions) -> dict[str, Any]:
    return {
        "name": "token",
        "secret": {
            "secretName": options.token_secret,
            "items": [{"key": "token", "path": "token"}],
        },
    }


def render_k8s(options: ServingOptions) -> dict[str, dict[str, Any]]:
    """File name -> manifest for the serving of `options.ref`."""
    selector = {"app.kubernetes.io/name": options.name}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(options, annotations={"conveyor/model": options.ref}),
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": selector,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "containers": [_container(options)],
                    "volumes": [_token_volume(options)],
                    "terminationGracePeriodSeconds": 30,
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(
            options,
            annotations={
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(PORT),
                "prometheus.io/path": "/metrics",
            },
        ),
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(options),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": options.name},
            "minReplicas": options.replicas,
            "maxReplicas": max(options.max_replicas, options.replicas),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": options.target_cpu_utilization,
                        },
                    },
                }
            ],
        },
    }
    runtime_container = _container(options)
    runtime_container["name"] = "kserve-container"
    runtime = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": _metadata(options, name=f"{options.name}-runtime"),
        "spec": {
            "supportedModelFormats": [{"name": "conveyor", "version": "1", "autoSelect": True}],
            "protocolVersions": ["v2"],
            "containers": [runtime_container],
            "volumes": [_token_volume(options)],
        },
    }
    inference = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": _metadata(options, annotations={"conveyor/model": options.ref}),
        "spec": {
            "predictor": {
                "minReplicas": options.replicas,
                "maxReplicas": max(options.max_replicas, options.replicas),
                "model": {
                    "modelFormat": {"name": "conveyor"},
                    "runtime": f"{options.name}-runtime",
                    "protocolVersion": "v2",
                },
            }
        },
    }
    return {
        "deployment.yaml": deployment,
        "service.yaml": service,
        "hpa.yaml": hpa,
        "kserve-runtime.yaml": runtime,
        "kserve-inferenceservice.yaml": inference,
    }

"""The OpenAPI document of a server, generated from the served model's signature."""

from __future__ import annotations

from typing import Any

from conveyor.serving.servable import Servable

_JSON_TYPES: dict[str, dict[str, Any]] = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "str": {"type": "string"},
    "category": {"type": "string"},
    "datetime": {"type": "string", "format": "date-time"},
}

_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "What is wrong and how to fix it."},
        "problem": {
            "type": "string",
            "description": "missing, null, wrong_type, unseen_category, bad_shape, ...",
        },
        "field": {"type": "string", "description": "The offending field, e.g. records[0].tenure"},
        "request_id": {"type": "string"},
    },
    "required": ["error"],
}


def _column_schema(rule: Any) -> dict[str, Any]:
    schema = dict(_JSON_TYPES[rule.dtype])
    if rule.categories:
        schema["enum"] = sorted(rule.categories, key=str)
    if rule.nullable:
        schema["nullable"] = True
    return schema


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed JSON",
        401: "Missing or wrong bearer token",
        413: "Body too large",
        422: "Request does not match the model signature",
        503: "No model loaded yet",
    }
    return {
        str(c): {
            "description": text[c],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for c in codes
    }


def openapi_document(servable: Servable | None, *, auth: bool, version: str) -> dict[str, Any]:
    rules = servable.rules if servable is not None else ()
    record = {
        "type": "object",
        "properties": {r.name: _column_schema(r) for r in rules},
        "required": [r.name for r in rules],
    }
    columns = {
        "type": "object",
        "properties": {r.name: {"type": "array", "items": _column_schema(r)} for r in rules},
        "required": [r.name for r in rules],
    }
    title = f"{servable.name} v{servable.version}" if servable else "conveyor model server"
    tensor = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string"},
            "data": {"type": "array", "items": {}},
        },
        "required": ["name", "shape", "datatype", "data"],
    }
    json_body = {"content": {"application/json": {"schema": {"type": "object"}}}}
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": title, "version": version},
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Predict for rows given as records or columns",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {
                                            "type": "object",
                                            "properties": {
                                                "records": {"type": "array", "items": record}
                                            },
                                            "required": ["records"],
                                        },
                                        {
                                            "type": "object",
                                            "properties": {"columns": columns},
                                            "required": ["columns"],
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Predictions, in request row order",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "model": {"type": "string"},
                                            "version": {"type": "string"},
                                            "request_id": {"type": "string"},
                                            "predictions": {"type": "array", "items": {}},
                                            "probabilities": {
                                                "type": "array",
                                                "items": {
                                                    "type": "array",
                                                    "items": {"type": "number"},
                                                },
                                            },
                                            "classes": {"type": "array", "items": {}},
                                        },
                                    }
                                }
                            },
                        },
                        **_errors(400, 401, 413, 422, 503),
                    },
                }
            },
            "/v2/models/{model}/infer": {
                "post": {
                    "summary": "Open Inference Protocol v2 inference",
                    "parameters": [
                        {
                            "name": "model",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "id": {"type": "string"},
                                        "inputs": {"type": "array", "items": tensor},
                                    },
                                    "required": ["inputs"],
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Output tensors predict, predict_proba",
                            **json_body,
                        },
                        **_errors(400, 401, 413, 422, 503),
                    },
                }
            },
            "/v2": {
                "get": {
                    "summary": "Server metadata",
                    "responses": {"200": {"description": "ok", **json_body}},
                }
            },
            "/v2/health/live": {
                "get": {"summary": "Liveness", "responses": {"200": {"description": "live"}}}
            },
            "/v2/health/ready": {
                "get": {
                    "summary": "Readiness",
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    },
                }
            },
            "/v2/models/{model}": {
                "get": {
                    "summary": "Model metadata",
                    "responses": {"200": {"description": "ok", **json_body}},
                }
            },
            "/v2/models/{model}/ready": {
                "get": {
                    "summary": "Model readiness",
                    "responses": {"200": {"description": "ready"}},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness (no auth)",
                    "responses": {"200": {"description": "live"}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Ready once a model is loaded",
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "text exposition format"}},
                }
            },
        },
        "components": {"schemas": {"Error": _ERROR}},
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc


def docs_html(doc: dict[str, Any]) -> str:
    """A self-contained page describing the API (no external scripts or styles)."""
    from html import escape

    rows = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{escape(path)}</code></td>"
                f"<td>{escape(op.get('summary', ''))}</td></tr>"
            )
    schemas = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    record = schemas["schema"]["oneOf"][0]["properties"]["records"]["items"]["properties"]
    columns = "".join(
        f"<tr><td><code>{escape(name)}</code></td><td>{escape(str(spec))}</td></tr>"
        for name, spec in record.items()
    )
    title = escape(doc["info"]["title"])
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:2px 12px}</style></head>"
        f"<body><h1>{title}</h1><p>Machine-readable description: "
        "<a href='openapi.json'>openapi.json</a></p><h2>Endpoints</h2>"
        f"<table>{''.join(rows)}</table><h2>Input columns</h2><table>{columns}</table>"
        "</body></html>"
    )

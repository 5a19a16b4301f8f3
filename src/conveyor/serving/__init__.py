"""Serving: one model reference answers online (REST, Open Inference Protocol v2) and in batch.

Heavy modules (the ASGI app, pandas, pyarrow) load on first use of a name below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor._internal.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "create_app": "conveyor.serving.app",
    "ServeOptions": "conveyor.serving.app",
    "ServingApp": "conveyor.serving.app",
    "BatchPolicy": "conveyor.serving.batching",
    "LogPolicy": "conveyor.serving.predlog",
    "PredictionLogger": "conveyor.serving.predlog",
    "FixedSource": "conveyor.serving.servable",
    "RegistrySource": "conveyor.serving.servable",
    "Servable": "conveyor.serving.servable",
    "RequestError": "conveyor.serving.validation",
    "score_file": "conveyor.serving.batch",
    "BatchSummary": "conveyor.serving.batch",
    "serve": "conveyor.serving.server",
}

__all__ = [
    "BatchPolicy",
    "BatchSummary",
    "FixedSource",
    "LogPolicy",
    "PredictionLogger",
    "RegistrySource",
    "RequestError",
    "Servable",
    "ServeOptions",
    "ServingApp",
    "create_app",
    "score_file",
    "serve",
]

if TYPE_CHECKING:
    from conveyor.serving.app import ServeOptions, ServingApp, create_app
    from conveyor.serving.batch import BatchSummary, score_file
    from conveyor.serving.batching import BatchPolicy
    from conveyor.serving.predlog import LogPolicy, PredictionLogger
    from conveyor.serving.servable import FixedSource, RegistrySource, Servable
    from conveyor.serving.server import serve
    from conveyor.serving.validation import RequestError


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

"""Routes of the model registry: models, versions, aliases, audit log, gate decisions,
and the admin actions promote and rollback (recorded under the token's name)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from conveyor.api.app import json_response, returns, stores
from conveyor.api.auth import Principal, require_admin, require_viewer
from conveyor.api.queries import Page
from conveyor.api.queries import models as mq

router = APIRouter(dependencies=[Depends(require_viewer)])

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Before = Annotated[str | None, Query(description="Cursor: the next_cursor of the previous page.")]
After = Annotated[str | None, Query(description="Cursor: the prev_cursor of the following page.")]


class PromoteBody(BaseModel):
    """Move an alias to a version."""

    version: int = Field(ge=1)
    alias: str = Field(min_length=1, max_length=64)
    reason: str | None = Field(default=None, max_length=2000)
    force: bool = Field(
        default=False, description="Promote even a version its gate refused for this alias."
    )


class RollbackBody(BaseModel):
    """Move an alias back to its previous holder."""

    alias: str = Field(min_length=1, max_length=64)
    reason: str | None = Field(default=None, max_length=2000)


class ActionResult(BaseModel):
    """What an admin action did: the audit entry, or none when nothing moved."""

    moved: bool
    event: dict[str, Any] | None


@router.get("/models", tags=["models"])
@returns(Page[mq.ModelSummary])
def list_models(
    request: Request, before: Before = None, after: After = None, limit: Limit = 50
) -> Any:
    """Registered models by name, with their aliases."""
    page = mq.list_models(stores(request).metadata, before=before, after=after, limit=limit)
    return json_response(page)


@router.get("/models/{name}", tags=["models"])
@returns(mq.ModelSummary)
def get_model(request: Request, name: str) -> Any:
    """One model with its aliases."""
    return json_response(mq.get_model(stores(request).metadata, name))


@router.get("/models/{name}/versions", tags=["models"])
@returns(Page[mq.ModelVersionSummary])
def list_versions(
    request: Request, name: str, before: Before = None, after: After = None, limit: Limit = 50
) -> Any:
    """Versions of a model, newest first."""
    page = mq.list_model_versions(
        stores(request).metadata, name, before=before, after=after, limit=limit
    )
    return json_response(page)


@router.get("/models/{name}/versions/{version}", tags=["models"])
@returns(mq.ModelVersionDetail)
def get_version(request: Request, name: str, version: str) -> Any:
    """A version (number or alias) with its signature, metrics, report and gate decision."""
    return json_response(mq.get_model_version(stores(request).metadata, name, version))


@router.get("/models/{name}/audit", tags=["models"])
@returns(Page[mq.AuditEntry])
def audit(
    request: Request,
    name: str,
    alias: str | None = None,
    before: Before = None,
    after: After = None,
    limit: Limit = 50,
) -> Any:
    """The audit log of a model, newest first."""
    page = mq.audit_log(
        stores(request).metadata, name, alias=alias, before=before, after=after, limit=limit
    )
    return json_response(page)


@router.get("/gate-decisions", tags=["models"])
@returns(Page[mq.GateDecision])
def gate_decisions(
    request: Request,
    model: str | None = None,
    run_id: str | None = None,
    before: Before = None,
    after: After = None,
    limit: Limit = 50,
) -> Any:
    """Gate decisions, newest first."""
    page = mq.list_gate_decisions(
        stores(request).metadata,
        model=model,
        run_id=run_id,
        before=before,
        after=after,
        limit=limit,
    )
    return json_response(page)


@router.post("/models/{name}/promote", tags=["models"])
@returns(ActionResult)
def promote(
    request: Request,
    name: str,
    body: PromoteBody,
    principal: Annotated[Principal, Depends(require_admin)],
) -> Any:
    """Point NAME@ALIAS at a version (admin). Servers watching the alias reload."""
    found = stores(request)
    event = mq.promote(
        found.metadata,
        found.artifacts,
        name,
        body.version,
        body.alias,
        actor=principal.name,
        reason=body.reason,
        force=body.force,
    )
    return json_response({"moved": event is not None, "event": event})


@router.post("/models/{name}/rollback", tags=["models"])
@returns(ActionResult)
def rollback(
    request: Request,
    name: str,
    body: RollbackBody,
    principal: Annotated[Principal, Depends(require_admin)],
) -> Any:
    """Point NAME@ALIAS back at its previous holder (admin)."""
    found = stores(request)
    event = mq.rollback(
        found.metadata, found.artifacts, name, body.alias, actor=principal.name, reason=body.reason
    )
    return json_response({"moved": True, "event": event})

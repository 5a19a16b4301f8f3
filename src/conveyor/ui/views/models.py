"""Models: the list, a model's versions, aliases, audit log and gate decisions, a model
card per version, and the promote / rollback actions (admin, CSRF-protected POST forms).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from conveyor.api.queries import models as mq
from conveyor.ui.svg import bar_chart, line_chart
from conveyor.ui.views._base import UI, BadRequest, flashes_from, markup, page_guard

if TYPE_CHECKING:
    from fastapi import APIRouter

MAX_FORM_BYTES = 16_384


def list_page(ui: UI, request: Request) -> Response:
    page = mq.list_models(
        ui.store,
        before=request.query_params.get("before") or None,
        after=request.query_params.get("after") or None,
    )
    return ui.render(request, "models.html", title="Models", section="models", page_=page)


def model_page(ui: UI, request: Request, name: str) -> Response:
    model = mq.get_model(ui.store, name)
    versions = mq.list_model_versions(
        ui.store,
        name,
        before=request.query_params.get("before") or None,
        after=request.query_params.get("after") or None,
    )
    audit = mq.audit_log(ui.store, name, limit=50)
    gates = mq.list_gate_decisions(ui.store, model=name, limit=50)
    metric_keys = sorted({k for v in versions.items for k in v.metrics})
    chart = (
        line_chart(
            {
                k: [(float(v.version), v.metrics[k]) for v in versions.items if k in v.metrics]
                for k in metric_keys
            },
            label=f"metrics per version of {name}",
        )
        if len(versions.items) > 1
        else ""
    )
    return ui.render(
        request,
        "model.html",
        title=f"Model {name}",
        section="models",
        m=model,
        versions=versions,
        audit=audit.items,
        gates=gates.items,
        metric_keys=metric_keys,
        chart=markup(chart),
        admin=ui.is_admin(request),
        csrf=ui.csrf_token(request),
        flashes=flashes_from(request.query_params),
    )


def version_page(ui: UI, request: Request, name: str, version: str) -> Response:
    detail = mq.get_model_version(ui.store, name, version)
    model = mq.get_model(ui.store, name)
    report = detail.report or {}
    slices = report.get("slices") or {}
    metrics = detail.version.metrics or report.get("metrics") or {}
    chart = bar_chart(
        [(k, float(v)) for k, v in metrics.items() if isinstance(v, (int, float))],
        label="metrics",
    )
    return ui.render(
        request,
        "model_version.html",
        title=f"Model {detail.version.ref}",
        section="models",
        d=detail,
        v=detail.version,
        m=model,
        report=report,
        slices=slices,
        metrics=metrics,
        chart=markup(chart),
        admin=ui.is_admin(request),
        csrf=ui.csrf_token(request),
        flashes=flashes_from(request.query_params),
    )


def card_page(ui: UI, request: Request, name: str, version: str) -> Response:
    """The generated model card (`conveyor models card`) as a self-contained page."""
    from starlette.responses import HTMLResponse

    from conveyor.registry.card import build_card

    detail = mq.get_model_version(ui.store, name, version)  # 404 for an unknown version
    return HTMLResponse(build_card(ui.registry, detail.version.ref).to_html())


async def _form(request: Request) -> dict[str, str]:
    """The text fields of a POST form (already parsed, and CSRF-checked, by the auth
    dependency; the parse is cached on the request)."""
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise BadRequest("The form is too large.")
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _back(name: str, form: dict[str, str], **message: str) -> RedirectResponse:
    target = form.get("next") or ""
    prefix = f"/models/{quote(name)}"
    if not (target == prefix or target.startswith(prefix + "/")):
        target = prefix
    key, text = next(iter(message.items()))
    return RedirectResponse(f"{target}?{key}={quote(text)}", status_code=303)


async def promote_action(ui: UI, request: Request, name: str) -> Response:
    form = await _form(request)
    actor = ui.actor(request)
    alias = (form.get("alias") or "").strip()
    raw = (form.get("version") or "").strip()
    if not alias or not raw.isdigit():
        return _back(name, form, error="Promote needs an alias and a version number.")
    try:
        entry = mq.promote(
            ui.store,
            ui.artifacts,
            name,
            int(raw),
            alias,
            actor=actor,
            reason=(form.get("reason") or "").strip() or "promoted in the UI",
            force=(form.get("force") or "") == "1",
        )
    except Exception as exc:  # a refused move is shown on the page, not a 500
        from conveyor.exceptions import ConveyorError

        if not isinstance(exc, ConveyorError):
            raise
        return _back(name, form, error=str(exc))
    if entry is None:
        return _back(name, form, ok=f"{name}@{alias} already points at version {raw}.")
    return _back(name, form, ok=f"{name}@{alias} now points at version {entry.to_version}.")


async def rollback_action(ui: UI, request: Request, name: str) -> Response:
    form = await _form(request)
    actor = ui.actor(request)
    alias = (form.get("alias") or "").strip()
    if not alias:
        return _back(name, form, error="Rollback needs an alias.")
    from conveyor.exceptions import ConveyorError

    try:
        entry = mq.rollback(
            ui.store,
            ui.artifacts,
            name,
            alias,
            actor=actor,
            reason=(form.get("reason") or "").strip() or "rolled back in the UI",
        )
    except ConveyorError as exc:
        return _back(name, form, error=str(exc))
    return _back(name, form, ok=f"{name}@{alias} rolled back to version {entry.to_version}.")


def add_routes(ui: UI, router: APIRouter) -> None:
    from fastapi import Depends

    from conveyor.api.auth import require_admin

    def models(request: Request) -> Response:
        return list_page(ui, request)

    def model(request: Request, name: str) -> Response:
        return model_page(ui, request, name)

    def version(request: Request, name: str, version: str) -> Response:
        return version_page(ui, request, name, version)

    async def promote(request: Request, name: str) -> Response:
        return await _guarded(ui, request, promote_action(ui, request, name))

    async def rollback(request: Request, name: str) -> Response:
        return await _guarded(ui, request, rollback_action(ui, request, name))

    router.add_api_route("/models", page_guard(ui, models), methods=["GET"])
    router.add_api_route("/models/{name}", page_guard(ui, model), methods=["GET"])

    def card(request: Request, name: str, version: str) -> Response:
        return card_page(ui, request, name, version)

    router.add_api_route("/models/{name}/{version}", page_guard(ui, version), methods=["GET"])
    router.add_api_route("/models/{name}/{version}/card", page_guard(ui, card), methods=["GET"])
    admin = [Depends(require_admin)]
    router.add_api_route("/models/{name}/promote", promote, methods=["POST"], dependencies=admin)
    router.add_api_route("/models/{name}/rollback", rollback, methods=["POST"], dependencies=admin)


async def _guarded(ui: UI, request: Request, action: Any) -> Response:
    from conveyor.exceptions import NotFoundError

    try:
        response: Response = await action
    except BadRequest as exc:
        return ui.error(request, 400, str(exc))
    except NotFoundError as exc:
        return ui.error(request, 404, str(exc))
    return response

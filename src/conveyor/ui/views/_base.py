"""What every page view shares: the stores, the Jinja environment and its filters.

A view function gathers data through the query functions (the same ones `/api/v1`
serves) and hands plain values to one template; templates only format.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from conveyor.ui.svg._common import STATUS_COLOURS

if TYPE_CHECKING:
    import jinja2
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, Response

    from conveyor.api.auth import AuthConfig
    from conveyor.config import Settings
    from conveyor.registry.registry import Registry
    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.stores.metadata import MetadataStore

NAV = (
    ("/runs", "Runs", "runs"),
    ("/datasets", "Datasets", "datasets"),
    ("/models", "Models", "models"),
    ("/monitors", "Monitoring", "monitors"),
    ("/tuning", "Tuning", "tuning"),
    ("/lineage", "Lineage", "lineage"),
)


def fmt_number(value: Any) -> str:
    """Numbers for tables: integers as is, floats to 4 significant digits."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def fmt_cell(value: Any) -> Any:
    """A table cell of a stored value: a dash for None, numbers via `fmt_number`, the rest
    as (escaped) text; the filter form of the ``value`` macro, for the long tables."""
    from markupsafe import Markup, escape

    if value is None:
        return Markup('<span class="muted">\u2013</span>')
    if isinstance(value, int | float) and not isinstance(value, bool):
        return escape(fmt_number(value))
    return escape(str(value))


def fmt_time(epoch: float | None) -> str:
    """An epoch time as ``YYYY-MM-DD HH:MM:SS`` UTC ('' for None)."""
    if epoch is None:
        return ""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(seconds: float | None) -> str:
    """A duration for people: 420 ms, 3.2 s, 4 min 05 s, 2 h 03 min."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def with_query(url: str, **changes: Any) -> str:
    """`url` with query parameters set (a None value removes the parameter)."""
    parts = urlsplit(url)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=False) if k not in changes]
    pairs += [(k, str(v)) for k, v in changes.items() if v is not None and v != ""]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(pairs), ""))


def short_id(value: str | None) -> str:
    """The first 10 characters of an id (unique enough to read; links use the whole id)."""
    return (value or "")[:10]


@dataclass
class UI:
    """The stores and templates behind every page; built once per app."""

    settings: Settings
    auth: AuthConfig
    _env: jinja2.Environment | None = field(default=None, repr=False)
    _store: MetadataStore | None = field(default=None, repr=False)
    _artifacts: ArtifactStore | None = field(default=None, repr=False)

    @property
    def store(self) -> MetadataStore:
        if self._store is None:
            from conveyor.stores.metadata import open_metadata_store

            self._store = open_metadata_store(self.settings.db_url)
        return self._store

    @property
    def artifacts(self) -> ArtifactStore:
        if self._artifacts is None:
            from conveyor.stores.artifacts import open_artifact_store

            self._artifacts = open_artifact_store(self.settings.artifact_url)
        return self._artifacts

    @property
    def registry(self) -> Registry:
        from conveyor.registry.registry import get_registry

        return get_registry(self.store, self.artifacts)

    @property
    def env(self) -> jinja2.Environment:
        if self._env is None:
            import jinja2

            _TestableUndefined = _undefined_class()
            env = jinja2.Environment(
                loader=jinja2.PackageLoader("conveyor.ui", "templates"),
                autoescape=True,
                undefined=_TestableUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
            )
            env.filters.update(
                num=fmt_number,
                cell=fmt_cell,
                ts=fmt_time,
                dur=fmt_duration,
                with_query=with_query,
                short=short_id,
            )
            env.globals.update(nav=NAV, status_colours=tuple(STATUS_COLOURS.items()))
            self._env = env
        return self._env

    def render(
        self,
        request: Request,
        template: str,
        *,
        title: str,
        section: str,
        viewer: Any = None,
        status_code: int = 200,
        flashes: tuple[tuple[str, str], ...] = (),
        **context: Any,
    ) -> HTMLResponse:
        """The HTML response of `template` with the page frame's values filled in."""
        from starlette.responses import HTMLResponse

        body = self.env.get_template(template).render(
            title=title,
            section=section,
            page=template.removesuffix(".html"),
            viewer=viewer or getattr(request.state, "principal", None),
            request_url=str(request.url.path)
            + (f"?{request.url.query}" if request.url.query else ""),
            flashes=flashes,
            reload_when_done=context.pop("reload_when_done", False),
            **context,
        )
        return HTMLResponse(body, status_code=status_code)

    def is_admin(self, request: Request) -> bool:
        """Whether the caller may promote and roll back (the page shows the forms)."""
        from conveyor.api.auth import current_principal

        return current_principal(request).is_admin

    def csrf_token(self, request: Request) -> str:
        """The CSRF token the caller's forms must send back."""
        from conveyor.api.auth import csrf_token

        return csrf_token(request)

    def actor(self, request: Request) -> str:
        """The name an admin action is recorded under (the token's name or local user).

        Raises:
            HTTPException: 403 when the caller is not an admin.
        """
        from fastapi import HTTPException

        from conveyor.api.auth import current_principal

        principal = current_principal(request)
        if not principal.is_admin:
            raise HTTPException(status_code=403, detail="This action needs an admin token.")
        return principal.name

    def error(self, request: Request, status_code: int, message: str) -> HTMLResponse:
        """An error page; the message says what was wrong and how to fix it."""
        titles = {400: "Bad request", 403: "Forbidden", 404: "Not found"}
        return self.render(
            request,
            "error.html",
            title=titles.get(status_code, "Error"),
            section="",
            status_code=status_code,
            message=message,
        )


def _undefined_class() -> type:
    import jinja2

    class TestableUndefined(jinja2.StrictUndefined):
        """Strict when printed or iterated (a typo fails loudly in tests), but false in an
        ``{% if %}``, so templates can test optional keys of stored JSON documents."""

        def __bool__(self) -> bool:  # type: ignore[override]
            return False

    return TestableUndefined


def markup(svg: str) -> Any:
    """Server-built SVG as template markup (its text was escaped when it was drawn)."""
    from markupsafe import Markup

    return Markup(svg)


def flashes_from(query: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """A message passed back by a redirect after a POST (``?ok=`` or ``?error=``)."""
    found = []
    if query.get("ok"):
        found.append(("ok", query["ok"][:300]))
    if query.get("error"):
        found.append(("error", query["error"][:300]))
    return tuple(found)


class BadRequest(ValueError):
    """A page parameter is not usable; the page answers 400 with this message."""


def page_guard(ui: UI, view: Callable[..., Response]) -> Callable[..., Response]:
    """Turn the errors a page can meet into error pages (404 missing, 400 bad input)."""
    import functools

    from conveyor.api.queries import QueryError
    from conveyor.exceptions import ConveyorError, NotFoundError

    @functools.wraps(view)
    def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return view(request, *args, **kwargs)
        except NotFoundError as exc:
            return ui.error(request, 404, str(exc))
        except (QueryError, BadRequest) as exc:
            return ui.error(request, 400, str(exc))
        except ConveyorError as exc:
            return ui.error(request, 400, str(exc))

    return wrapper


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within low..high.

    Raises:
        BadRequest: not an integer, or out of range.
    """
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"The '{name}' parameter must be an integer. Got {raw!r}.") from None
    if not low <= value <= high:
        raise BadRequest(f"The '{name}' parameter must be in {low}..{high}. Got {value}.")
    return value


def query_date(request: Request, name: str, *, end_of_day: bool = False) -> float | None:
    """A ``YYYY-MM-DD`` query parameter as UTC epoch seconds (the day's end if asked).

    Raises:
        BadRequest: not a date.
    """
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        day = dt.datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise BadRequest(
            f"The '{name}' parameter must be a date like 2026-01-31. Got {raw!r}."
        ) from None
    return day.timestamp() + (86400 if end_of_day else 0)

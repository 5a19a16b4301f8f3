"""A Python client of a conveyor server's REST API (``conveyor ui`` serves it).

>>> from conveyor.client import Client
>>> client = Client("http://host:8765", token="...")
>>> page = client.runs(limit=10, pipeline="train", status="failed")
>>> for run in page: print(run["id"], run["status"])
>>> older = client.runs(limit=10, before=page.next_cursor)

Rows come back as plain dicts shaped like the API's JSON (documented at
``/api/v1/docs``). The client needs only httpx, no database driver or credentials.
Errors: `NotFoundError` for 404, `ServerError` (with ``status_code``) for any other
refusal and for an unreachable server.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import ConveyorError, NotFoundError

if TYPE_CHECKING:
    import httpx

API = "/api/v1"


class ServerError(ConveyorError):
    """The server refused a request (or could not be reached: ``status_code`` 0)."""

    def __init__(self, message: str, status_code: int = 0) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class Page:
    """One page of a list: its rows and the cursors of the neighbouring pages.

    Attributes:
        items: The rows (dicts).
        next_cursor: Pass as ``before=`` for the next page; None on the last page.
        prev_cursor: Pass as ``after=`` for the previous page; None on the first page.
    """

    items: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None
    prev_cursor: str | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


def _q(value: object) -> str:
    """A path segment, percent-encoded (names and ids never reach another route)."""
    from urllib.parse import quote

    return quote(str(value), safe="")


def _page(data: Mapping[str, Any]) -> Page:
    return Page(list(data.get("items", [])), data.get("next_cursor"), data.get("prev_cursor"))


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v not in ([], ())}


class Client:
    """The REST API of one conveyor server.

    Args:
        url: Base URL, e.g. ``http://127.0.0.1:8765``.
        token: Bearer token from the server's token file (None for an open loopback
            server).
        timeout: Seconds per request.
        transport: An httpx transport to use instead of the network (optional).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConveyorError(
                f"The server URL must start with http:// or https://. Got {url!r} instead."
            )
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._transport = transport
        self._http: httpx.Client | None = None
        self._csrf: str | None = None

    def __repr__(self) -> str:
        return f"Client({self.url!r}, token={'***' if self._token else None})"

    # ------------------------------------------------------------ plumbing
    def _client(self) -> httpx.Client:
        if self._http is None:
            from conveyor._internal.lazy import require

            httpx = require("httpx", "client")

            headers = {"Accept": "application/json"}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            self._http = httpx.Client(
                base_url=self.url,
                headers=headers,
                timeout=self._timeout,
                transport=self._transport,
                follow_redirects=False,
            )
        return self._http

    def close(self) -> None:
        """Close the connection pool."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        client = self._client()
        import httpx

        try:
            response = client.request(method, API + path, params=params, json=json, headers=headers)
        except httpx.HTTPError as exc:
            raise ServerError(f"Cannot reach the conveyor server at {self.url}: {exc}.") from exc
        if response.status_code >= 400:
            detail = _detail(response)
            if response.status_code == 404:
                raise NotFoundError(detail)
            if response.status_code == 401:
                detail += (
                    " Pass token= to Client (the CLI reads CONVEYOR_TOKEN or --server-token-file)."
                )
            raise ServerError(
                f"{method} {path} failed ({response.status_code}): {detail}",
                response.status_code,
            )
        return response

    def _get(self, path: str, **params: Any) -> Any:
        return self._request("GET", path, params=_params(**params)).json()

    def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        headers = {}
        if not self._token:
            # An open loopback server asks a client without a token for its CSRF token.
            if self._csrf is None:
                self._csrf = str(self._get("/csrf")["csrf_token"])
            headers["X-CSRF-Token"] = self._csrf
        return self._request("POST", path, json=dict(body), headers=headers).json()

    # ------------------------------------------------------------ runs
    def whoami(self) -> dict[str, Any]:
        """The token name and role the server sees."""
        return dict(self._get("/whoami"))

    def runs(
        self,
        limit: int = 50,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        trigger: str | None = None,
        tags: Mapping[str, str] | None = None,
        search: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        sort: str | None = None,
        metrics: Sequence[str] = (),
        before: str | None = None,
        after: str | None = None,
    ) -> Page:
        """One page of runs (newest first unless `sort`, e.g. ``-metric:accuracy``)."""
        return _page(
            self._get(
                "/runs",
                limit=limit,
                pipeline=pipeline,
                status=status,
                trigger=trigger,
                tag=[f"{k}:{v}" for k, v in (tags or {}).items()],
                q=search,
                created_after=created_after,
                created_before=created_before,
                sort=sort,
                metric=list(metrics),
                before=before,
                after=after,
            )
        )

    def iter_runs(self, page_size: int = 200, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every run matching the filters of `runs`, following the cursors."""
        cursor: str | None = None
        while True:
            page = self.runs(page_size, before=cursor, **filters)
            yield from page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def run(self, run_id: str) -> dict[str, Any]:
        """One run (a unique id prefix works) with outputs and step counts."""
        return dict(self._get(f"/runs/{_q(run_id)}"))

    def steps(
        self,
        run_id: str,
        *,
        status: str | None = None,
        limit: int = 500,
        before: str | None = None,
        after: str | None = None,
    ) -> Page:
        """Step runs of a run, in planning order."""
        return _page(
            self._get(
                f"/runs/{_q(run_id)}/steps", status=status, limit=limit, before=before, after=after
            )
        )

    def graph(self, run_id: str) -> dict[str, Any]:
        """Every step run of a run and the artifact edges between them."""
        return dict(self._get(f"/runs/{_q(run_id)}/graph"))

    def step(self, step_run_id: str) -> dict[str, Any]:
        """A step run with inputs, outputs and why it ran or hit the cache."""
        return dict(self._get(f"/step-runs/{_q(step_run_id)}"))

    def logs(self, step_run_id: str) -> str:
        """The captured output of a step run."""
        return str(self._get(f"/step-runs/{_q(step_run_id)}/logs")["text"])

    def metrics(self, run_id: str, keys: Sequence[str] = ()) -> dict[str, list[dict[str, Any]]]:
        """Every logged value of each metric of a run."""
        return dict(self._get(f"/runs/{_q(run_id)}/metrics", key=list(keys)))

    def compare(self, run_ids: Sequence[str]) -> dict[str, Any]:
        """Params, metrics, code and data versions and cache keys of several runs."""
        return dict(self._get("/compare", runs=",".join(run_ids)))

    def pipelines(self) -> list[str]:
        """Names of the pipelines that have runs."""
        return list(self._get("/pipelines"))

    # ------------------------------------------------------------ artifacts, lineage
    def artifacts(
        self,
        *,
        run_id: str | None = None,
        name: str | None = None,
        limit: int = 50,
        before: str | None = None,
        after: str | None = None,
    ) -> Page:
        """Artifacts, newest first (of one run, or with one name)."""
        return _page(
            self._get(
                "/artifacts", run_id=run_id, name=name, limit=limit, before=before, after=after
            )
        )

    def artifact(self, artifact_id: str) -> dict[str, Any]:
        """An artifact with the step runs that produced and consumed it."""
        return dict(self._get(f"/artifacts/{_q(artifact_id)}"))

    def preview(self, artifact_id: str, rows: int = 20) -> dict[str, Any]:
        """Head and schema of a table, head of an array, a JSON value, or the summary."""
        return dict(self._get(f"/artifacts/{_q(artifact_id)}/preview", rows=rows))

    def download(self, artifact_id: str) -> bytes:
        """The stored bytes of an artifact."""
        return self._request("GET", f"/artifacts/{_q(artifact_id)}/download").content

    def lineage(
        self, node: str, *, direction: str = "both", depth: int = 10, max_nodes: int = 500
    ) -> dict[str, Any]:
        """The lineage graph around ``artifact:ID``, ``model:NAME:VERSION``, ``run:ID``,
        ``dataset:NAME:VERSION``, ``step:ID`` or ``request:ID``."""
        return dict(
            self._get("/lineage", node=node, direction=direction, depth=depth, max_nodes=max_nodes)
        )

    # ------------------------------------------------------------ datasets
    def datasets(self, limit: int = 50, *, before: str | None = None) -> Page:
        """Datasets by name with their newest version."""
        return _page(self._get("/datasets", limit=limit, before=before))

    def dataset_versions(self, name: str, limit: int = 50, *, before: str | None = None) -> Page:
        """Versions of a dataset, newest first."""
        return _page(self._get(f"/datasets/{_q(name)}/versions", limit=limit, before=before))

    def dataset_version(self, name: str, version: int) -> dict[str, Any]:
        """A version with the runs that read it and its validation reports."""
        return dict(self._get(f"/datasets/{_q(name)}/versions/{_q(version)}"))

    def profile(self, name: str, version: int) -> dict[str, Any]:
        """The stored Profile of a dataset version."""
        return dict(self._get(f"/datasets/{_q(name)}/versions/{_q(version)}/profile"))

    # ------------------------------------------------------------ models
    def models(self, limit: int = 50, *, before: str | None = None) -> Page:
        """Registered models by name, with their aliases."""
        return _page(self._get("/models", limit=limit, before=before))

    def model_versions(self, name: str, limit: int = 50, *, before: str | None = None) -> Page:
        """Versions of a model, newest first."""
        return _page(self._get(f"/models/{_q(name)}/versions", limit=limit, before=before))

    def model_version(self, name: str, version: int | str) -> dict[str, Any]:
        """A version (number or alias) with signature, metrics, report and gate decision."""
        return dict(self._get(f"/models/{_q(name)}/versions/{_q(version)}"))

    def audit_log(self, name: str, limit: int = 50, *, before: str | None = None) -> Page:
        """The audit log of a model, newest first."""
        return _page(self._get(f"/models/{_q(name)}/audit", limit=limit, before=before))

    def promote(
        self, name: str, version: int, alias: str, *, reason: str | None = None
    ) -> dict[str, Any]:
        """Point NAME@ALIAS at `version` (needs an admin token)."""
        body = {"version": version, "alias": alias, "reason": reason}
        return dict(self._post(f"/models/{_q(name)}/promote", body))

    def rollback(self, name: str, alias: str, *, reason: str | None = None) -> dict[str, Any]:
        """Point NAME@ALIAS back at its previous holder (needs an admin token)."""
        return dict(self._post(f"/models/{_q(name)}/rollback", {"alias": alias, "reason": reason}))

    # ------------------------------------------------------------ monitoring, tuning, triggers
    def monitors(self, limit: int = 50, *, before: str | None = None) -> Page:
        """Monitors with their newest report."""
        return _page(self._get("/monitors", limit=limit, before=before))

    def reports(self, monitor: str, limit: int = 50, *, before: str | None = None) -> Page:
        """Window reports of a monitor, newest first."""
        return _page(self._get(f"/monitors/{_q(monitor)}/reports", limit=limit, before=before))

    def report(self, report_id: str) -> dict[str, Any]:
        """A window report with its full document."""
        return dict(self._get(f"/reports/{_q(report_id)}"))

    def studies(self, limit: int = 50, *, before: str | None = None) -> Page:
        """Tuning studies, newest first."""
        return _page(self._get("/tuning/studies", limit=limit, before=before))

    def trials(self, study: str, limit: int = 100, *, before: str | None = None) -> Page:
        """Trials of a study by number."""
        return _page(self._get(f"/tuning/studies/{_q(study)}/trials", limit=limit, before=before))

    def trigger_events(
        self,
        limit: int = 50,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        before: str | None = None,
    ) -> Page:
        """Trigger decisions, newest first."""
        return _page(
            self._get(
                "/trigger-events", limit=limit, pipeline=pipeline, status=status, before=before
            )
        )


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, Mapping) else body
    if isinstance(detail, list):  # FastAPI's 422: a list of problems
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}"
            for d in detail
            if isinstance(d, Mapping)
        )
    return str(detail)


__all__ = ["Client", "Page", "ServerError"]

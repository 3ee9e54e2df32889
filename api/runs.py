"""The Collection Runs API: a collection's run history and one run in detail.

    GET /collections/{collectionId}/runs?cursor=&limit=&status=&source=
    GET /collections/{collectionId}/runs/{runId}

Runs are listed newest first, ``limit`` per page (10 by default, at most
100), with an opaque ``meta.nextCursor`` for the next page; the last page
has none. ``collectionId`` is the collection's id, or its Postman UID
(``<owner>-<id>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.context import context_of
from api.errors import invalid_param, not_found
from pmrunner.errors import InputError
from runtime.reporters.run_shapes import collection_run_detail, collection_run_summary
from store.runs import JSON, RunPage, RunStore, decode_cursor

STATUSES = ("queued", "running", "finished", "failed")
SOURCES = ("collection_runner", "monitor", "webhook", "schedule", "api", "newman")
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
# A Postman UID: the owner's numeric id, a dash, then the collection's id.
_POSTMAN_UID = re.compile(r"^\d+-(?P<id>.+)$")


@dataclass(frozen=True)
class RunsQuery:
    """The query of a runs listing, checked.

    Parameters:
        cursor: where the page starts (a ``nextCursor`` of an earlier page).
        limit: runs per page, 1 to 100.
        status: only runs with this status.
        source: only runs started this way.
    """

    cursor: str | None = None
    limit: int = DEFAULT_LIMIT
    status: str | None = None
    source: str | None = None

    @classmethod
    def parse(cls, params: QueryParams) -> RunsQuery:
        """Read and check the query; ApiError (400) naming the parameter when one is wrong."""
        return cls(
            cursor=_cursor(params.get("cursor")),
            limit=_limit(params.get("limit")),
            status=_choice("status", params.get("status"), STATUSES),
            source=_choice("source", params.get("source"), SOURCES),
        )


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    text = raw.strip()
    # Length first: int() of thousands of digits is slow, then refused.
    digits = text.isascii() and text.isdigit() and len(text) <= len(str(MAX_LIMIT))
    if not digits or not 1 <= int(text) <= MAX_LIMIT:
        raise invalid_param(f"limit must be a whole number from 1 to {MAX_LIMIT}, got {raw!r}")
    return int(text)


def _choice(name: str, raw: str | None, allowed: tuple[str, ...]) -> str | None:
    if raw is None or raw in allowed:
        return raw
    raise invalid_param(f"{name} must be one of {', '.join(allowed)}; got {raw!r}")


def _cursor(raw: str | None) -> str | None:
    """A cursor as the OpenAPI document's pattern allows it (every such string is a position)."""
    if raw is None:
        return None
    try:
        decode_cursor(raw)
    except InputError:
        shown = raw if len(raw) <= 80 else raw[:80] + "..."
        raise invalid_param(
            f"cursor {shown!r} is not a cursor of this API (use meta.nextCursor of a page)"
        ) from None
    return raw


def collection_ids(collection_id: str) -> list[str]:
    """The ids a collection may be stored under: as given, and the id in a Postman UID."""
    match = _POSTMAN_UID.match(collection_id)
    return [collection_id, match["id"]] if match else [collection_id]


def stored_collection_id(store: RunStore, collection_id: str) -> str | None:
    """The id ``collection_id``'s runs are stored under; None when it has none."""
    return next((cid for cid in collection_ids(collection_id) if store.has_collection(cid)), None)


def runs_page(store: RunStore, collection_id: str, query: RunsQuery) -> RunPage:
    """One page of the collection's runs (blocking); ApiError (404) for an unknown collection."""
    stored_id = stored_collection_id(store, collection_id)
    if stored_id is None:
        raise not_found(f"Collection {collection_id!r} has no runs, or does not exist.")
    return store.list(
        stored_id,
        cursor=query.cursor,
        limit=query.limit,
        status=query.status,
        source=query.source,
    )


def page_body(page: RunPage) -> JSON:
    """``{"runs": [...], "meta": {"total", "nextCursor"}}``; no ``nextCursor`` on the last page."""
    meta: JSON = {"total": page.total}
    if page.next_cursor:
        meta["nextCursor"] = page.next_cursor
    return {"runs": [collection_run_summary(report) for report in page.runs], "meta": meta}


async def list_runs(request: Request) -> Response:
    """``GET /collections/{collectionId}/runs``: the collection's runs, newest first."""
    context = context_of(request)
    query = RunsQuery.parse(request.query_params)
    collection_id = request.path_params["collectionId"]
    page = await run_in_threadpool(runs_page, context.services.store, collection_id, query)
    return JSONResponse(page_body(page))


async def get_run(request: Request) -> Response:
    """``GET /collections/{collectionId}/runs/{runId}``: one run with its executions."""
    context = context_of(request)
    collection_id = request.path_params["collectionId"]
    run_id = request.path_params["runId"]
    report = await run_in_threadpool(context.services.store.get, run_id)
    if report is None or report.get("collectionId") not in collection_ids(collection_id):
        raise not_found(f"Run {run_id!r} was not found in collection {collection_id!r}.")
    return JSONResponse({"run": collection_run_detail(report)})

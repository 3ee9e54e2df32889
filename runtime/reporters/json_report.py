"""newman's JSON report, and the report vocabulary the other reporters share.

The shape follows ``newman run -r json``: ``collection``, ``environment``,
``globals`` and ``run`` (stats, timings, executions, transfers, failures,
error). Bodies are text, already capped by the runner; every string is
masked once more before it is written.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from typing import TextIO
from urllib.parse import parse_qsl, urlsplit

import orjson

from pmrunner.errors import InputError
from runtime.events import NullListener
from runtime.masking import (
    collection_secrets,
    mask_auth_params,
    mask_headers,
    mask_json,
    run_secrets,
)
from runtime.model import Collection
from runtime.results import JSON, Execution, RequestRecord, ResponseRecord, Run, utc_now

SCHEMA_V21 = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"

# Phases newman reports when asked for detailed timings; present (as 0) so that
# readers of newman's report find every key they expect.
NOT_MEASURED_TIMINGS = {
    f"{phase}{stat}": 0
    for phase in ("dns", "firstByte")
    for stat in ("Average", "Min", "Max", "Sd")
}


# --- the vocabulary shared by the reporters -------------------------------------------


@dataclass(frozen=True)
class LocatedFailure:
    """A failure with newman's description of where it happened.

    Parameters:
        execution: the request it belongs to, None for an error outside any request.
        name: the error's name ("AssertionError", "TypeError", ...).
        message: what went wrong.
        at: newman's location ("assertion:0 in test-script", "test-script", "request").
        test: the assertion's name, for assertion failures.
        index: the assertion's position in its execution, for assertion failures.
        stack: a stack trace when the script engine gave one.
    """

    execution: Execution | None
    name: str
    message: str
    at: str
    test: str | None = None
    index: int | None = None
    stack: str | None = None


def located_failures(run: Run) -> list[LocatedFailure]:
    """Every failure of a run in execution order, errors of a request before its assertions."""
    found: list[LocatedFailure] = []
    for execution in run.executions:
        for error in execution.errors:
            found.append(LocatedFailure(execution, error.name, error.message, at=error.kind))
        for index, assertion in enumerate(execution.assertions):
            if assertion.passed or assertion.skipped:
                continue
            found.append(
                LocatedFailure(
                    execution,
                    assertion.error_name or "AssertionError",
                    assertion.error or f"expected '{assertion.name}' to be truthy",
                    at=f"assertion:{index} in test-script",
                    test=assertion.name,
                    index=index,
                    stack=assertion.stack,
                )
            )
    for error in run.run_errors:
        found.append(LocatedFailure(None, error.name, error.message, at=error.kind))
    return found


def item_title(execution: Execution) -> str:
    """The request's name with its folders, as newman names it: ``Folder / Request``."""
    return " / ".join((*execution.path, execution.item_name))


def sent_responses(run: Run) -> list[ResponseRecord]:
    return [e.response for e in run.executions if e.response is not None and not e.skipped]


def run_duration_ms(run: Run) -> float:
    finished = run.finished_at or utc_now()
    return max(0.0, (finished - run.started_at).total_seconds() * 1000)


def response_timings(run: Run) -> JSON:
    """Average, min, max and standard deviation (population) of response times, in ms."""
    times = [response.response_time_ms for response in sent_responses(run)]
    if not times:
        return {"responseAverage": 0, "responseMin": 0, "responseMax": 0, "responseSd": 0}
    average = sum(times) / len(times)
    variance = sum((time - average) ** 2 for time in times) / len(times)
    return {
        "responseAverage": average,
        "responseMin": min(times),
        "responseMax": max(times),
        "responseSd": math.sqrt(variance),
    }


def total_received(run: Run) -> int:
    """Bytes of response bodies received in the run."""
    return sum(response.size for response in sent_responses(run))


def newman_response_size(response: ResponseRecord) -> int:
    """The response's size as newman prints it: body plus status line and headers.

    postman-collection's ``Response.size().total``: the body's bytes on the
    wire (its Content-Length when the server sent one, else the body read),
    plus ``HTTP/X.X <code> <reason>\\r\\n\\r\\n`` and ``<name>: <value>\\r\\n``
    for each header.
    """
    length = next((v for k, v in response.headers if k.lower() == "content-length"), "")
    body = int(length) if length.strip().isdigit() else response.size
    reason = response.status or _reason(response.code)
    status_line = len(f"HTTP/X.X {response.code} {reason}\r\n\r\n")
    return body + status_line + sum(len(f"{k}: {v}\r\n") for k, v in response.headers)


def _reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


def epoch_ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


# --- the JSON document -----------------------------------------------------------------


def url_object(raw: str) -> JSON:
    """A URL as a Postman URL object (``raw``, ``protocol``, ``host``, ``path``, ``query``)."""
    parts = urlsplit(raw)
    url: JSON = {
        "raw": raw,
        "protocol": parts.scheme,
        "host": (parts.hostname or "").split(".") if parts.hostname else [],
        "path": [segment for segment in parts.path.split("/")[1:]] if parts.path else [],
        "query": [
            {"key": key, "value": value}
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        "variable": [],
    }
    try:
        port = parts.port
    except ValueError:  # an invalid port in a recorded URL must not break a report
        port = None
    if port is not None:
        url["port"] = str(port)
    return url


def header_list(headers: list[tuple[str, str]]) -> list[JSON]:
    return [{"key": key, "value": value} for key, value in headers]


def request_json(record: RequestRecord) -> JSON:
    request: JSON = {
        "url": url_object(record.url),
        "method": record.method,
        "header": header_list(mask_headers(record.headers, ())),
    }
    if record.body:
        # What was sent is encoded text whatever the body's mode was: newman's "raw".
        request["body"] = {"mode": "raw", "raw": record.body}
    return request


def response_json(record: ResponseRecord, response_id: str) -> JSON:
    return {
        "id": response_id,
        "status": record.status,
        "code": record.code,
        "header": header_list(mask_headers(record.headers, ())),
        "body": record.body,
        "cookie": [],
        "responseTime": record.response_time_ms,
        "responseSize": record.size,
    }


def assertion_json(execution: Execution) -> list[JSON]:
    assertions: list[JSON] = []
    for index, assertion in enumerate(execution.assertions):
        entry: JSON = {"assertion": assertion.name, "skipped": assertion.skipped}
        if not assertion.passed and not assertion.skipped:
            entry["error"] = {
                "name": assertion.error_name or "AssertionError",
                "index": index,
                "test": assertion.name,
                "message": assertion.error or f"expected '{assertion.name}' to be truthy",
                "stack": assertion.stack or "",
            }
        assertions.append(entry)
    return assertions


def cursors(run: Run) -> dict[int, JSON]:
    """newman's cursor of each execution, by execution id.

    ``ref`` is stable for an execution of a run, so a failure's cursor points
    at its execution's cursor.
    """
    by_iteration: dict[int, list[Execution]] = {}
    for execution in run.executions:
        by_iteration.setdefault(execution.iteration, []).append(execution)
    found: dict[int, JSON] = {}
    for iteration, executions in by_iteration.items():
        length = len(executions)
        for position, execution in enumerate(executions):
            ref = uuid.uuid5(uuid.NAMESPACE_URL, f"{run.collection_id}/{execution.id}")
            found[execution.id] = {
                "position": position,
                "iteration": iteration,
                "length": length,
                "cycles": run.iterations,
                "empty": False,
                "eof": position == length - 1,
                "bof": position == 0,
                "cr": False,
                "ref": str(ref),
                "httpRequestId": str(uuid.uuid5(ref, "request")),
            }
    return found


class _Items:
    """The items of the collection that ran, as newman puts them in executions and failures.

    With the collection at hand an item is its JSON (request, responses,
    scripts; auth masked); without it, its id and name.
    """

    def __init__(self, run: Run, collection: Collection | None) -> None:
        self.run = run
        self.by_id = {item.id: item for item in collection.items()} if collection else {}

    def item(self, execution: Execution) -> JSON:
        item = self.by_id.get(execution.item_id)
        if item is None:
            return {"id": execution.item_id, "name": execution.item_name}
        found: JSON = {
            "id": item.id,
            "name": item.name,
            "request": item.request,
            "response": item.responses,
            "event": item.events,
        }
        return dict(mask_auth_params(found))

    def parent(self, execution: Execution) -> JSON:
        """The folder (or the collection) that holds the item."""
        item = self.by_id.get(execution.item_id)
        if item is not None and item.parents:
            parent = item.parents[-1]
            return {"id": parent.id, "name": parent.name}
        if execution.path:
            return {"name": execution.path[-1]}
        return {"id": self.run.collection_id, "name": self.run.collection_name}


def execution_json(execution: Execution, cursor: JSON, items: _Items) -> JSON:
    entry: JSON = {
        "id": cursor["ref"],
        "cursor": cursor,
        "item": items.item(execution),
        "assertions": assertion_json(execution),
    }
    if execution.request is not None:
        entry["request"] = request_json(execution.request)
    if execution.response is not None:
        entry["response"] = response_json(execution.response, cursor["httpRequestId"])
    if execution.skipped:
        entry["skipped"] = True
    return entry


def failure_json(
    failure: LocatedFailure, run: Run, cursor_of: dict[int, JSON], items: _Items
) -> JSON:
    error: JSON = {"name": failure.name, "message": failure.message, "stack": failure.stack or ""}
    if failure.test is not None:
        error["test"] = failure.test
        error["index"] = failure.index
    entry: JSON = {"error": error, "at": failure.at}
    execution = failure.execution
    if execution is None:
        entry["source"] = {"id": run.collection_id, "name": run.collection_name}
        entry["parent"] = {}
        entry["cursor"] = {}
    else:
        entry["source"] = items.item(execution)
        entry["parent"] = items.parent(execution)
        entry["cursor"] = cursor_of[execution.id]
    return entry


def collection_json(run: Run, collection: Collection | None) -> JSON:
    """The collection as run, with auth credentials masked.

    Without the collection at hand, its info and the requests that ran stand in.
    """
    if collection is not None:
        raw = mask_auth_params(collection.raw)
        info = dict(raw.get("info") or {})
        info.setdefault("_postman_id", collection.id)
        info.setdefault("name", collection.name)
        defaults: JSON = {"event": [], "variable": []}
        return {**defaults, **raw, "info": info, "item": raw.get("item") or []}
    items: dict[str, JSON] = {}
    for execution in run.executions:
        items.setdefault(execution.item_id, {"id": execution.item_id, "name": execution.item_name})
    info = {"_postman_id": run.collection_id, "name": run.collection_name, "schema": SCHEMA_V21}
    return {"info": info, "item": list(items.values())}


def scope_json(name: str | None, values: list[JSON], scope: str) -> JSON:
    return {"id": None, "name": name, "values": values, "_postman_variable_scope": scope}


def run_error_json(run: Run) -> JSON | None:
    if not run.run_errors:
        return None
    first = run.run_errors[0]
    return {"name": first.name, "message": first.message}


def build_report(
    run: Run, collection: Collection | None = None, secrets: Iterable[str] = ()
) -> JSON:
    """newman's JSON report of a finished run, with secrets masked.

    Parameters:
        run: the finished run.
        collection: the collection that ran, to include it whole; optional.
        secrets: values to mask besides the run's secret variables.
    """
    cursor_of = cursors(run)
    items = _Items(run, collection)
    timings = {
        **response_timings(run),
        **NOT_MEASURED_TIMINGS,
        "started": epoch_ms(run.started_at),
        "completed": epoch_ms(run.finished_at or utc_now()),
    }
    report = {
        "collection": collection_json(run, collection),
        "environment": scope_json(run.environment_name, run.environment, "environment"),
        "globals": scope_json("globals", run.globals, "globals"),
        "run": {
            "stats": run.stats(),
            "timings": timings,
            "executions": [execution_json(e, cursor_of[e.id], items) for e in run.executions],
            "transfers": {"responseTotal": total_received(run)},
            "failures": [
                failure_json(failure, run, cursor_of, items) for failure in located_failures(run)
            ],
            "error": run_error_json(run),
        },
    }
    in_collection = collection_secrets(collection.raw) if collection is not None else set()
    hidden = {*secrets, *run_secrets(run), *in_collection}
    if not any(hidden):
        # Nothing to mask (empty values never are): the report was built here,
        # so no masked copy is needed (half of the report's cost, 2,000 requests).
        return report
    return dict(mask_json(report, hidden))


def report_text(report: JSON) -> str:
    """The report as indented JSON text, with a final newline.

    orjson writes it about ten times faster than the json module; what it
    refuses (an integer past 64 bits, a lone surrogate) goes through json.
    """
    try:
        encoded = orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    return encoded.decode("utf-8")


def write_text_file(path: Path, write: Callable[[TextIO], None]) -> None:
    """Create the parent folders of ``path`` and call ``write(stream)`` on it.

    Raises ``InputError`` naming the path when the file cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as stream:
            write(stream)
    except OSError as error:
        raise InputError(f"cannot write report {str(path)!r}: {error.strerror or error}") from None


class JsonReporter(NullListener):
    """Writes newman's JSON report to ``path`` when the run finishes.

    Parameters:
        path: the report file; its parent folders are created.
        collection: the collection that ran, to include it in the report.
        secrets: values to mask besides the run's secret variables.
    """

    def __init__(
        self,
        path: Path | str,
        collection: Collection | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.path = Path(path)
        self.collection = collection
        self.secrets = frozenset(secrets)

    def run_finished(self, run: Run) -> None:
        report = build_report(run, self.collection, self.secrets)

        def write(stream: TextIO) -> None:
            stream.write(report_text(report))

        write_text_file(self.path, write)

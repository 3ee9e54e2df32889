"""A finished run in the shapes others read: the stored report, Postman's
monitor-run result, and the Collection Runs API's run and run summary.

The stored report wraps the run model (``Run.to_dict()``, secrets already
masked) with the facts the APIs need; both public shapes are derived from
it on read, so they always agree.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from runtime.reporters.json_report import run_error_json
from runtime.results import Execution, Run, iso

JSON = dict[str, Any]


def run_status(run: Run) -> str:
    """The Collection Runs API status of a finished run: finished or failed."""
    return "failed" if run.failed else "finished"


def build_report(
    run: Run,
    *,
    run_id: str,
    source: str,
    environment_id: str | None = None,
    monitor: JSON | None = None,
    created_by: str | None = None,
) -> JSON:
    """The stored form of a finished run."""
    finished = run.finished_at or run.started_at
    return {
        "id": run_id,
        "collectionId": run.collection_id,
        "collectionName": run.collection_name,
        "environmentId": environment_id,
        "source": source,
        "status": run_status(run),
        "startedAt": iso(run.started_at),
        "finishedAt": iso(finished),
        "startedAt_ms": int(run.started_at.timestamp() * 1000),
        "duration": int((finished - run.started_at).total_seconds() * 1000),
        "monitor": monitor,
        "createdBy": created_by,
        "run": run.to_dict(),
    }


def run_counts(run: Run) -> JSON:
    """Requests and assertions, total and failed, as the json reporter's ``run.stats`` counts them.

    A request failed when it got no response (a connection error, a timeout);
    a failed assertion does not fail its request.
    """
    stats = run.stats()
    return {
        kind: {"total": stats[kind]["total"], "failed": stats[kind]["failed"]}
        for kind in ("requests", "assertions")
    }


def _headers_dict(headers: list[tuple[str, str]]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for key, value in headers:
        lowered = key.lower()
        merged[lowered] = f"{merged[lowered]}, {value}" if lowered in merged else value
    return merged


def _url_without_scheme(url: str) -> str:
    parts = urlsplit(url)
    return url[len(parts.scheme) + 3 :] if parts.scheme else url


def _monitor_execution(execution: Execution) -> JSON:
    data: JSON = {
        "id": execution.id,
        "item": {"id": execution.item_id, "name": execution.item_name},
    }
    if execution.request is not None:
        request = execution.request
        data["request"] = {
            "body": {"contentLength": request.body_size, "mode": request.body_mode},
            "headers": _headers_dict(request.headers),
            "method": request.method,
            "timestamp": iso(execution.started_at),
            "url": _url_without_scheme(request.url),
        }
    if execution.response is not None:
        response = execution.response
        data["response"] = {
            "body": {"contentLength": response.size},
            "code": response.code,
            "headers": _headers_dict(response.headers),
            "responseSize": response.size,
            "responseTime": round(response.response_time_ms),
        }
    if execution.assertions:
        data["assertions"] = {a.name: a.passed for a in execution.assertions if not a.skipped}
    if execution.errors:
        data["errors"] = [
            {"name": e.name, "message": e.message, "kind": e.kind} for e in execution.errors
        ]
    if execution.worker or execution.network:
        data["worker"] = {"hostname": execution.worker, "network": execution.network}
    return data


def monitor_run_result(report: JSON) -> JSON:
    """Postman's Run-a-Monitor response: ``{"run": {info, stats, executions, failures}}``."""
    run = Run.from_dict(report["run"])
    monitor = report.get("monitor") or {}
    failures = [
        {
            "assertion": {failure.assertion: False} if failure.assertion else {},
            "executionId": failure.execution.id,
            "message": failure.message,
            "name": failure.name,
        }
        for failure in run.failures()
    ]
    failures += [
        {"assertion": {}, "executionId": None, "message": e.message, "name": e.name}
        for e in run.run_errors
    ]
    counts = run_counts(run)
    return {
        "run": {
            "info": {
                "collectionUid": report["collectionId"],
                "finishedAt": report["finishedAt"],
                "jobId": report["id"],
                "monitorId": monitor.get("uid"),
                "name": monitor.get("name") or report.get("collectionName"),
                "startedAt": report["startedAt"],
                "status": "failed" if run.failed else "success",
            },
            "stats": {"assertions": counts["assertions"], "requests": counts["requests"]},
            "executions": [_monitor_execution(e) for e in run.executions],
            "failures": failures,
        }
    }


def _runs_api_error(report: JSON, run: Run) -> JSON | None:
    """Why the run as a whole failed (it could not start, timed out...), or None."""
    error = run_error_json(run)
    if error is not None and report.get("error"):
        error["message"] = report["error"]  # says what the run error alone does not
    return error


def run_monitor(report: JSON) -> JSON | None:
    """``{"id", "name"}`` of the monitor the run belongs to; None for a run of no monitor."""
    meta = report.get("monitor") or {}
    if not meta.get("uid"):
        return None
    return {"id": str(meta["uid"]), "name": str(meta.get("name") or meta["uid"])}


def collection_run_summary(report: JSON) -> JSON:
    """A ``CollectionRunSummary`` of the Collection Runs API (``error`` when one stopped it)."""
    run = Run.from_dict(report["run"])
    summary = {
        "id": report["id"],
        "status": report["status"],
        "source": report["source"],
        "startedAt": report["startedAt"],
        "finishedAt": report["finishedAt"],
        "stats": run_counts(run),
        "collectionId": report["collectionId"],
        "environmentId": report.get("environmentId"),
        "createdBy": report.get("createdBy"),
        "monitor": run_monitor(report),
    }
    error = _runs_api_error(report, run)
    if error is not None:
        summary["error"] = error
    return summary


def _runs_api_execution(execution: Execution) -> JSON:
    data: JSON = {
        "id": str(execution.id),
        "itemName": execution.item_name,
        "assertions": [
            {"name": a.name, "passed": a.passed, "error": a.error}
            for a in execution.assertions
            if not a.skipped
        ]
        + [
            {"name": f"{e.kind}: {e.name}", "passed": False, "error": e.message}
            for e in execution.errors
        ],
    }
    if execution.request is not None:
        data["request"] = {"method": execution.request.method, "url": execution.request.url}
    if execution.response is not None:
        data["response"] = {
            "statusCode": execution.response.code,
            "responseTime": round(execution.response.response_time_ms),
            "responseSize": execution.response.size,
        }
    return data


def collection_run_detail(report: JSON) -> JSON:
    """A ``CollectionRun`` of the Collection Runs API, with its executions."""
    run = Run.from_dict(report["run"])
    return {
        **collection_run_summary(report),
        "duration": report["duration"],
        "executions": [_runs_api_execution(e) for e in run.executions],
    }

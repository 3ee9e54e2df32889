"""The ``html`` reporter: one self-contained page per run (newman's ``-r html``).

The page has no external resource (styles inline, no script) so it can be
mailed or archived as it is. Failures come first, then the totals, a
timeline of the requests (when each started and how long it took) and every
request with its assertions, errors and response. Every string is masked
(secret variables, Authorization and API-key headers) before it is written.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from runtime.events import NullListener
from runtime.masking import mask_headers, mask_json, run_secrets
from runtime.reporters.cli import format_bytes, format_ms
from runtime.reporters.json_report import (
    item_title,
    located_failures,
    newman_response_size,
    run_duration_ms,
    total_received,
    write_text_file,
)
from runtime.results import JSON, Execution, Run, iso

BODY_PREVIEW_CHARS = 4096
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f4f5f7}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{margin:0 0 4px}h2{margin:28px 0 10px;font-size:18px}
.meta{color:#5c6370}.cards{display:flex;gap:12px;flex-wrap:wrap;margin-top:16px}
.card{background:#fff;border-radius:8px;padding:10px 16px;min-width:120px;
box-shadow:0 1px 2px #0002}
.card b{display:block;font-size:20px}
.passed{color:#1a7f37}.failed{color:#c62828}.skipped{color:#8a6d00}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0002}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e3e5e8;vertical-align:top}
.lane{position:relative;height:14px;background:#eef0f3;border-radius:3px;min-width:240px}
.bar{position:absolute;top:0;height:14px;border-radius:3px;background:#2e7d32}
.bar.failed{background:#c62828}
details{background:#fff;margin:8px 0;border-radius:8px;padding:8px 14px;box-shadow:0 1px 2px #0002}
summary{cursor:pointer;font-weight:600}ul{margin:6px 0;padding-left:20px}
pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:240px;white-space:pre-wrap}
"""


def execution_view(execution: Execution, started_ms: float) -> JSON:
    """What the page shows of one request, before masking."""
    request, response = execution.request, execution.response
    view: JSON = {
        "id": execution.id,
        "title": item_title(execution),
        "iteration": execution.iteration + 1,
        "failed": execution.failed,
        "skipped": execution.skipped,
        "offset_ms": max(0.0, execution.started_at.timestamp() * 1000 - started_ms),
        "method": request.method if request else "",
        "url": request.url if request else "",
        "request_headers": mask_headers(request.headers, ()) if request else [],
        "assertions": [
            {"name": a.name, "passed": a.passed, "skipped": a.skipped, "error": a.error or ""}
            for a in execution.assertions
        ],
        "errors": [f"{e.name} in {e.kind}: {e.message}" for e in execution.errors],
        "code": None,
    }
    if response is not None:
        view.update(
            code=response.code,
            status=response.status,
            time_ms=response.response_time_ms,
            size=newman_response_size(response),
            response_headers=mask_headers(response.headers, ()),
            body=response.body[:BODY_PREVIEW_CHARS],
        )
    return view


def run_view(run: Run, secrets: Iterable[str] = ()) -> JSON:
    """Everything the page shows, masked."""
    started_ms = run.started_at.timestamp() * 1000
    stats = run.stats()
    failures = [
        {
            "request": item_title(f.execution) if f.execution else run.collection_name,
            "where": f.test or f.at,
            "name": f.name,
            "message": f.message,
        }
        for f in located_failures(run)
    ]
    view = {
        "name": run.collection_name,
        "environment": run.environment_name or "",
        "started": iso(run.started_at),
        "duration_ms": run_duration_ms(run),
        "received": total_received(run),
        "failed": run.failed,
        "stats": stats,
        "failures": failures,
        "executions": [execution_view(e, started_ms) for e in run.executions],
    }
    hidden = {*secrets, *run_secrets(run)}
    return dict(mask_json(view, hidden)) if any(hidden) else view  # any: as in build_report


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cards(view: JSON) -> str:
    assertions = view["stats"]["assertions"]
    failed = int(assertions["failed"])
    passed = int(assertions["total"]) - failed - int(assertions["pending"])
    outcome = "failed" if view["failed"] else "passed"
    cards = [
        ("Outcome", f'<span class="{outcome}">{outcome}</span>'),
        ("Requests", esc(view["stats"]["requests"]["total"])),
        ("Assertions passed", f'<span class="passed">{passed}</span>'),
        ("Assertions failed", f'<span class="{"failed" if failed else "passed"}">{failed}</span>'),
        ("Duration", esc(format_ms(view["duration_ms"], micro="us"))),
        ("Data received", esc(format_bytes(view["received"]))),
    ]
    return (
        '<div class="cards">'
        + "".join(f'<div class="card">{label}<b>{value}</b></div>' for label, value in cards)
        + "</div>"
    )


def _failures(view: JSON) -> str:
    if not view["failures"]:
        return '<section id="failures"><h2>Failures</h2><p class="passed">None.</p></section>'
    rows = "".join(
        f"<tr><td>{n}</td><td>{esc(f['request'])}</td><td>{esc(f['where'])}</td>"
        f"<td>{esc(f['name'])}: {esc(f['message'])}</td></tr>"
        for n, f in enumerate(view["failures"], start=1)
    )
    return (
        f'<section id="failures"><h2 class="failed">Failures ({len(view["failures"])})</h2>'
        f"<table><tr><th>#</th><th>Request</th><th>Test or step</th><th>Error</th></tr>"
        f"{rows}</table></section>"
    )


def _summary(view: JSON) -> str:
    rows = "".join(
        f"<tr><td>{esc(kind)}</td><td>{esc(view['stats'][kind]['total'])}</td>"
        f"<td>{esc(view['stats'][kind]['failed'])}</td></tr>"
        for kind in ("iterations", "requests", "testScripts", "prerequestScripts", "assertions")
    )
    return (
        '<section id="summary"><h2>Summary</h2><table><tr><th></th><th>executed</th>'
        f"<th>failed</th></tr>{rows}</table></section>"
    )


def _timeline(view: JSON) -> str:
    executions = view["executions"]
    span = max(
        [view["duration_ms"], *(e["offset_ms"] + e.get("time_ms", 0) for e in executions), 1.0]
    )
    rows = []
    for e in executions:
        left = 100 * e["offset_ms"] / span
        width = max(0.5, 100 * e.get("time_ms", 0) / span)
        state = "failed" if e["failed"] else "passed"
        code = f"{e['code']} {esc(e.get('status', ''))}" if e["code"] is not None else "no response"
        rows.append(
            f'<tr class="{state}"><td>{esc(e["title"])}</td><td>{esc(e["method"])}</td>'
            f"<td>{code}</td><td>{esc(format_ms(e.get('time_ms', 0), micro='us'))}</td>"
            f'<td><div class="lane"><div class="bar {state}" style="left:{left:.2f}%;'
            f'width:{width:.2f}%"></div></div></td></tr>'
        )
    return (
        '<section id="timeline"><h2>Timeline</h2><table><tr><th>Request</th><th>Method</th>'
        "<th>Status</th><th>Time</th><th>When, over the run</th></tr>"
        + "".join(rows)
        + "</table></section>"
    )


def _headers(headers: list[Any]) -> str:
    return esc("\n".join(f"{key}: {value}" for key, value in headers))


def _request_detail(e: JSON) -> str:
    items = []
    for a in e["assertions"]:
        if a["skipped"]:
            items.append(f'<li class="skipped">skipped: {esc(a["name"])}</li>')
        elif a["passed"]:
            items.append(f'<li class="passed">&#10004; {esc(a["name"])}</li>')
        else:
            items.append(f'<li class="failed">&#10008; {esc(a["name"])}: {esc(a["error"])}</li>')
    items += [f'<li class="failed">{esc(error)}</li>' for error in e["errors"]]
    parts = [f"<p>{esc(e['method'])} {esc(e['url'])}</p>", f"<ul>{''.join(items)}</ul>"]
    parts.append(f"<p>Request headers</p><pre>{_headers(e['request_headers'])}</pre>")
    if e["code"] is not None:
        size = esc(format_bytes(e["size"]))
        parts.append(f"<p>Response {e['code']} {esc(e['status'])}, {size}</p>")
        parts.append(f"<pre>{_headers(e['response_headers'])}</pre><pre>{esc(e['body'])}</pre>")
    state = "failed" if e["failed"] else "passed"
    opened = " open" if e["failed"] else ""
    return (
        f'<details id="request-{e["id"]}"{opened}><summary class="{state}">'
        f"{esc(e['title'])} (iteration {e['iteration']})</summary>{''.join(parts)}</details>"
    )


def render_html(run: Run, secrets: Iterable[str] = ()) -> str:
    """The whole page for a finished run, masked and self-contained."""
    view = run_view(run, secrets)
    environment = f", environment {esc(view['environment'])}" if view["environment"] else ""
    details = "".join(_request_detail(e) for e in view["executions"])
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(view['name'])}: pmrunner report</title><style>{STYLE}</style></head>"
        f"<body><main><h1>{esc(view['name'])}</h1>"
        f'<div class="meta">started {esc(view["started"])}{environment}</div>'
        f"{_cards(view)}{_failures(view)}{_summary(view)}{_timeline(view)}"
        f'<section id="requests"><h2>Requests</h2>{details}</section>'
        "</main></body></html>\n"
    )


class HtmlReporter(NullListener):
    """Writes the page to ``path`` when the run finishes.

    Parameters:
        path: the page's file; its parent folders are created.
        secrets: values to mask besides the run's secret variables.
    """

    def __init__(self, path: Path | str, secrets: Iterable[str] = ()) -> None:
        self.path = Path(path)
        self.secrets = frozenset(secrets)

    def run_finished(self, run: Run) -> None:
        page = render_html(run, self.secrets)

        def write(stream: TextIO) -> None:
            stream.write(page)

        write_text_file(self.path, write)

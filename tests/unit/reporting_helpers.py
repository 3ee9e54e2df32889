"""Runs built by hand, and a replay of the runner's listener calls, for the reporter tests."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from runtime.events import Listeners
from runtime.reporters import CliReporter
from runtime.results import Assertion, Execution, RequestRecord, ResponseRecord, Run, ScriptError

START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SECRET = "s3cr3t-T0ken"
BASE = "http://127.0.0.1:8000"


def make_execution(
    number: int,
    name: str,
    *,
    iteration: int = 0,
    path: tuple[str, ...] = (),
    assertions: list[Assertion] | None = None,
    errors: list[ScriptError] | None = None,
    code: int | None = 200,
    time_ms: float = 10.0,
    size: int = 100,
    url: str = f"{BASE}/users",
    body: str = '{"id": 1}',
) -> Execution:
    response = None
    if code is not None:
        response = ResponseRecord(
            code=code,
            status="OK" if code == 200 else "Not Found",
            headers=[("Content-Type", "application/json"), ("Set-Cookie", "sid=abc")],
            body=body,
            size=size,
            response_time_ms=time_ms,
        )
    return Execution(
        id=number,
        item_id=f"item-{name.lower().replace(' ', '-')}",
        item_name=name,
        iteration=iteration,
        path=path,
        request=RequestRecord(
            method="GET",
            url=url,
            headers=[("Authorization", "Bearer abc.def"), ("Accept", "*/*")],
        ),
        response=response,
        assertions=assertions or [],
        errors=errors or [],
        started_at=START + timedelta(milliseconds=number),
    )


def sample_run(iterations: int = 1) -> Run:
    """Three requests per iteration: a passing one, a failing one in a folder, an error."""
    executions: list[Execution] = []
    for iteration in range(iterations):
        base = iteration * 3
        executions += [
            make_execution(
                base + 1,
                "List users",
                iteration=iteration,
                assertions=[Assertion("status is 200", True)],
                time_ms=10,
                size=1200,
            ),
            make_execution(
                base + 2,
                "Create user",
                iteration=iteration,
                path=("Users",),
                code=404,
                time_ms=30,
                size=34,
                assertions=[
                    Assertion("responds", True),
                    Assertion(
                        "status is 201",
                        False,
                        error="expected 404 to equal 201",
                        error_name="AssertionError",
                    ),
                    Assertion("later", False, skipped=True),
                ],
            ),
            make_execution(
                base + 3,
                "Broken",
                iteration=iteration,
                url="http://127.0.0.1:9/down",
                code=None,
                errors=[ScriptError("request", "ConnectionError", "connection refused")],
            ),
        ]
    return Run(
        collection_id="col-1",
        collection_name="Demo API",
        executions=executions,
        iterations=iterations,
        started_at=START,
        finished_at=START + timedelta(milliseconds=1234),
        environment=[
            {"key": "token", "value": SECRET, "type": "secret", "enabled": True},
            {"key": "host", "value": "127.0.0.1", "type": "default", "enabled": True},
        ],
        globals=[{"key": "g", "value": "1"}],
        environment_name="Local",
    )


def replay(run: Run, listener: Listeners | CliReporter) -> None:
    """Call a listener the way the runner does."""
    listener.run_started(run)
    iteration = None
    for execution in run.executions:
        if execution.iteration != iteration:
            iteration = execution.iteration
            listener.iteration_started(run, iteration)
        listener.execution_started(run, execution)
        listener.execution_finished(run, execution)
    listener.run_finished(run)


def cli_output(run: Run, **options: bool) -> str:
    stream = io.StringIO()
    color = options.pop("color", False)
    replay(run, CliReporter(stream, color=color, **options))
    return stream.getvalue()

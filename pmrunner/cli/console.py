"""What ``pmrunner up`` and ``pmrunner runner start`` tell the person watching.

At start: what the process serves (the worker's name, its queues, Redis, the
HTTP API, the metrics) and the monitors it loaded with their next slot. Then
one line per finished run: its time, monitor, status, assertions passed and
failed, requests and duration. Celery's own output (banner, one line per
task) stays off; warnings and errors still show.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import click

if TYPE_CHECKING:
    from scheduler.monitors import Monitor
    from worker.settings import Settings

JSON = dict[str, Any]
FINALIZER_LOGGER = "tasks.finalize"
FINALIZED = re.compile(r"run (\S+) finalized: ")


def redis_address(url: str) -> str:
    """The Redis URL without its password (``redis://:***@host:6379/0``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def served_lines(settings: Settings, node: str, queues: list[str]) -> list[str]:
    """The start-up lines saying what this process serves.

    Parameters:
        settings: the process's settings.
        node: the worker's node name (``pmrunner@host``).
        queues: the queues the worker consumes.
    """
    from tasks.presence import metrics_address

    if settings.api_key:
        api = f"http://{settings.api_host}:{settings.api_port} (x-api-key: PMRUNNER_API_KEY)"
    else:
        api = "off (set PMRUNNER_API_KEY to serve it)"
    if settings.metrics_port > 0:
        metrics = f"http://{metrics_address(settings)}/metrics"
    else:
        metrics = "off (--metrics to serve them)"
    return [
        f"pmrunner worker {node}, queues {', '.join(queues)}",
        f"  redis    {redis_address(settings.redis_url)}",
        f"  API      {api}",
        f"  metrics  {metrics}",
    ]


def monitor_lines(monitors: Iterable[Monitor], now: datetime | None = None) -> list[str]:
    """One line per monitor: name, uid, schedule and next slot (UTC)."""
    now = now or datetime.now(UTC)
    listed = sorted(monitors, key=lambda monitor: monitor.name)
    lines = [f"{len(listed)} monitor{'s' if len(listed) != 1 else ''} loaded:"]
    for monitor in listed:
        if not monitor.active:
            lines.append(f"  {monitor.name} ({monitor.uid}): paused")
            continue
        upcoming = monitor.schedule.next_slot(now).strftime("%H:%M:%S UTC")
        schedule = monitor.schedule.describe()
        lines.append(f"  {monitor.name} ({monitor.uid}): {schedule}, next {upcoming}")
    return lines


def run_line(report: JSON, color: bool = False) -> str:
    """One finished run: time, monitor, status, assertions, requests, duration.

    Parameters:
        report: the stored report.
        color: the status in green or red (``click.echo`` drops it off a terminal).
    """
    from runtime.results import Run

    run = Run.from_dict(report.get("run") or {})
    stats = run.stats()
    assertions = stats["assertions"]
    failed = int(assertions["failed"])
    passed = int(assertions["total"]) - failed - int(assertions["pending"])
    monitor = report.get("monitor") or {}
    name = monitor.get("name") or report.get("collectionName") or report.get("id")
    status = str(report.get("status"))
    mark = click.style(status, fg="red" if status == "failed" else "green") if color else status
    errors = int(stats["requests"]["failed"])
    clock = datetime.now(UTC).strftime("%H:%M:%S")
    line = (
        f"{clock} {name}: {mark}, assertions {passed} passed / {failed} failed,"
        f" {len(run.executions)} requests, {report.get('duration', 0)} ms"
    )
    return line + (f", {errors} request errors" if errors else "")


class RunPrinter(logging.Handler):
    """Prints one line for each run this process reports.

    Every way a run ends (its last step, the chord callback, the lost-worker
    resolution, the sweeper) goes through ``tasks.finalize.finalize``, which
    logs ``run <id> finalized: ...`` at INFO. This handler takes that logger's
    records: the finalized ones become run lines, warnings and errors go on
    to the root logger's handlers as before, other INFO records are dropped.

    Parameters:
        fetch: reads a stored report by run id (None when it is gone).
        echo: writes one line.
        color: colour the status (see ``run_line``).
    """

    def __init__(
        self,
        fetch: Callable[[str], JSON | None],
        echo: Callable[[str], None],
        color: bool = False,
    ) -> None:
        super().__init__(logging.INFO)
        self._fetch = fetch
        self._echo = echo
        self._color = color

    def connect(self) -> None:
        """Attach to the finalizer's logger (which then stops propagating on its own)."""
        logger = logging.getLogger(FINALIZER_LOGGER)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            logging.getLogger().handle(record)
            return
        finalized = FINALIZED.match(record.getMessage())
        if finalized is None:
            return
        try:
            report = self._fetch(finalized.group(1))
            if report is not None:
                self._echo(run_line(report, self._color))
        except Exception:  # printing must never fail the step that reported the run
            self.handleError(record)

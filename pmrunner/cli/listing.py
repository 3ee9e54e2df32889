"""``pmrunner runs list|show`` and ``pmrunner monitors list``: the run store from a shell.

They read what the HTTP API reads, in the same Redis (``PMRUNNER_REDIS_URL``;
without it, the embedded Redis a ``pmrunner up`` keeps in the data directory:
the running one, or, once ``up`` has stopped, its stored database opened for
the command; else the default URL). Redis that does not answer, or a run that
is not stored, is one ``error:`` line and exit 1.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from pmrunner.cli.output import CommandError
from pmrunner.errors import PmrunnerError

if TYPE_CHECKING:
    import redis

    from worker.settings import Settings

JSON = dict[str, Any]
# A shell command should say at once that Redis is away, not retry for a minute.
REDIS_TIMEOUT_SECONDS = 3.0
NAME_WIDTH = 32
STATUSES = ("finished", "failed")


def shown_url(url: str) -> str:
    """A Redis URL without its password, for messages."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:" if parts.username else ":"
    return parts._replace(netloc=f"{user}***@{host}").geturl()


@contextmanager
def store_settings() -> Iterator[Settings]:
    """The settings, with the embedded Redis of ``pmrunner up`` when no URL is set.

    A running ``up`` is read through its server; after ``up`` stopped, the
    history it kept in the data directory is opened for the command's time
    (Ctrl-C on ``up``, then ``runs list``, shows those runs).
    """
    from worker.embedded import EmbeddedRedis, holds_database, running_url
    from worker.settings import Settings

    try:
        settings = Settings.from_env()
    except PmrunnerError as error:
        raise CommandError(str(error)) from None
    if os.environ.get("PMRUNNER_REDIS_URL"):
        yield settings
        return
    embedded = running_url(settings.data_dir)
    if embedded:
        yield dataclasses.replace(settings, redis_url=embedded)
        return
    if not holds_database(settings.data_dir):
        yield settings
        return
    try:
        server = EmbeddedRedis(settings.data_dir).__enter__()
    except PmrunnerError as error:
        raise CommandError(str(error)) from None
    try:
        yield dataclasses.replace(settings, redis_url=server.url)
    finally:
        server.stop()


@contextmanager
def redis_errors(settings: Settings) -> Iterator[None]:
    """Redis and configuration errors inside the block as one ``error:`` line."""
    import redis

    try:
        yield
    except redis.RedisError as error:
        raise CommandError(
            f"cannot read the run store: Redis at {shown_url(settings.redis_url)} does not answer"
            f" ({error}); set PMRUNNER_REDIS_URL to the Redis pmrunner uses"
        ) from None
    except PmrunnerError as error:
        raise CommandError(str(error)) from None


def redis_client(settings: Settings) -> redis.Redis:
    """A client with short timeouts that answered a PING (inside :func:`redis_errors`)."""
    import redis

    client = redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS * 3,
    )
    client.ping()
    return client


def run_store(settings: Settings, client: redis.Redis) -> Any:
    from store import Keys, RunStore

    return RunStore(client, Keys(settings.key_prefix))


# -- formatting ------------------------------------------------------------------------------


def clipped(text: str, width: int = NAME_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def moment(iso_text: str | None) -> str:
    """``2026-12-03 17:26:06Z`` from an ISO time; ``-`` for none."""
    if not iso_text:
        return "-"
    parsed = datetime.fromisoformat(iso_text.replace("Z", "+00:00")).astimezone(UTC)
    return parsed.strftime("%Y-%m-%d %H:%M:%SZ")


def duration(milliseconds: float) -> str:
    """``350 ms``, ``12.3 s``, ``2 min 03 s``."""
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def until(when: datetime, now: datetime) -> str:
    """How far ``when`` lies ahead of ``now``: ``in 5 min``, ``due``."""
    seconds = (when - now).total_seconds()
    if seconds < 1:
        return "due"
    if seconds < 60:
        return f"in {seconds:.0f} s"
    if seconds < 3600:
        return f"in {seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"in {seconds / 3600:.1f} h"
    return f"in {seconds / 86400:.0f} d"


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """Left-aligned columns, two spaces apart."""
    widths = [max(len(row[n]) for row in (header, *rows)) for n in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in (header, *rows)
    ]
    return "\n".join(line.rstrip() for line in lines)


def assertion_counts(report: JSON) -> tuple[int, int]:
    """(passed, failed) assertions of a stored run, as its json report counts them."""
    from runtime.results import Run

    stats = Run.from_dict(report["run"]).stats()["assertions"]
    failed = int(stats["failed"])
    return int(stats["total"]) - failed - int(stats["pending"]), failed


def monitor_label(report: JSON) -> str:
    meta = report.get("monitor") or {}
    return str(meta.get("name") or meta.get("uid") or "-")


def run_row(report: JSON) -> tuple[str, ...]:
    passed, failed = assertion_counts(report)
    return (
        str(report["id"]),
        clipped(monitor_label(report)),
        clipped(str(report.get("collectionName") or report["collectionId"])),
        str(report["status"]),
        moment(report.get("startedAt")),
        duration(float(report.get("duration") or 0)),
        f"{passed}/{failed}",
    )


RUN_HEADER = ("RUN ID", "MONITOR", "COLLECTION", "STATUS", "STARTED", "DURATION", "PASSED/FAILED")


def run_summary(report: JSON) -> list[str]:
    """What ``runs show`` prints: the run, its counts, why it failed."""
    from runtime.results import Run

    run = Run.from_dict(report["run"])
    stats = run.stats()
    meta = report.get("monitor") or {}
    monitor = f"{meta.get('name')} ({meta.get('uid')})" if meta.get("uid") else "none"
    lines = [
        f"run         {report['id']}",
        f"monitor     {monitor}",
        f"collection  {report.get('collectionName')} ({report['collectionId']})",
        f"status      {report['status']} (source {report.get('source')})",
        f"started     {moment(report.get('startedAt'))}, took"
        f" {duration(float(report.get('duration') or 0))}",
        f"requests    {stats['requests']['total']}, {stats['requests']['failed']} failed",
        f"assertions  {stats['assertions']['total']}, {stats['assertions']['failed']} failed",
    ]
    if report.get("error"):
        lines.append(f"error       {report['error']}")
    failures = run.failures()
    if failures or run.run_errors:
        lines += ["", "failures"]
    for number, failure in enumerate(failures, start=1):
        what = f" > {failure.assertion}" if failure.assertion else ""
        lines.append(f"  {number}. {failure.execution.item_name}{what}")
        lines.append(f"     {failure.name}: {failure.message}")
    for error in run.run_errors:
        lines.append(f"  - {error.name}: {error.message}")
    return lines


# -- commands ------------------------------------------------------------------------------


@click.group("runs")
def runs_group() -> None:
    """Stored runs: list them, show one."""


@runs_group.command("list")
@click.option("--monitor", metavar="UID|NAME", help="Only runs of this monitor.")
@click.option("--collection", metavar="ID|UID|NAME", help="Only runs of this collection.")
@click.option("--status", type=click.Choice(STATUSES), help="Only runs with this status.")
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="Runs shown."
)
def runs_list_command(
    monitor: str | None, collection: str | None, status: str | None, limit: int
) -> None:
    """List stored runs, newest first."""
    from scheduler.snapshot import stored_collection_id

    names = (
        tuple(dict.fromkeys([collection, stored_collection_id(collection)])) if collection else ()
    )
    with store_settings() as settings, redis_errors(settings):
        store = run_store(settings, redis_client(settings))
        reports = store.recent(limit=limit, monitor=monitor, collection=names, status=status)
    if not reports:
        click.echo("no stored runs" + (" match" if monitor or collection or status else ""))
        return
    click.echo(table(RUN_HEADER, [run_row(report) for report in reports]))


@runs_group.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the stored report as JSON.")
def runs_show_command(run_id: str, as_json: bool) -> None:
    """Show one stored run (its id, or the start of its id): summary and failures."""
    with store_settings() as settings, redis_errors(settings):
        report = run_store(settings, redis_client(settings)).find(run_id)
    if report is None:
        raise CommandError(
            f"run {run_id!r} is not stored in {shown_url(settings.redis_url)}"
            " (another Redis or key prefix, or retention dropped it)"
        )
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo("\n".join(run_summary(report)))


@click.group("monitors")
def monitors_group() -> None:
    """Monitors: list them with their schedule, next slot and last run."""


@monitors_group.command("list")
def monitors_list_command() -> None:
    """List the monitors: schedule, next slot and last run."""
    from scheduler.catalog import Catalog
    from tasks.context import sealer_for
    from tasks.overview import monitor_statuses

    with store_settings() as settings, redis_errors(settings):
        client = redis_client(settings)
        # The catalog seals webhook URLs: the deployment's key opens them (as in the API).
        sealer = sealer_for(settings)
        catalog = Catalog(client, settings.key_prefix, settings.max_staleness, sealer)
        statuses = monitor_statuses(settings, run_store(settings, client), catalog)
    if not statuses:
        click.echo(
            "no monitors (set PMRUNNER_MONITORS_FILE, or start a scheduler that polls Postman)"
        )
        return
    now = datetime.now(UTC)
    rows = []
    for status in statuses:
        monitor, slot, last = status.monitor, status.next_slot_time(), status.last_run
        if not monitor.active:
            next_slot = "paused"
        elif slot is None:
            next_slot = "not scheduled"
        else:
            next_slot = f"{moment(slot.isoformat())} ({until(slot, now)})"
        last_run = f"{last['status']} {moment(last.get('startedAt'))}" if last else "-"
        rows.append(
            (clipped(monitor.name), monitor.uid, monitor.schedule.describe(), next_slot, last_run)
        )
    click.echo(table(("NAME", "UID", "SCHEDULE", "NEXT SLOT", "LAST RUN"), rows))

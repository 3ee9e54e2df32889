"""``pmrunner up``: the whole system on one machine, with nothing else installed.

Starts, in one process: a private Redis (``worker.embedded``, unless
``PMRUNNER_REDIS_URL`` names one), a Celery worker with the scheduler
embedded, and, when ``PMRUNNER_API_KEY`` is set, the HTTP API. It takes the
options of ``pmrunner runner start``; stopping it (Ctrl-C, SIGTERM) stops
everything, and the run history stays in the data directory.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click

from pmrunner.cli.output import CommandError
from pmrunner.cli.runner import runner_options, serve_runner
from pmrunner.errors import PmrunnerError

log = logging.getLogger("pmrunner.up")


@click.command("up")
@runner_options
@click.option(
    "--data-dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the embedded Redis keeps its data and the scheduler its state"
    " (default: PMRUNNER_DATA_DIR, else ~/.local/share/pmrunner).",
)
def up_command(data_dir: Path | None, **params: Any) -> None:
    """Run everything here: embedded Redis, the worker and scheduler, and the API."""
    from worker.embedded import EmbeddedRedis
    from worker.settings import Settings

    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir.expanduser()
    if os.environ.get("PMRUNNER_REDIS_URL"):
        raise click.exceptions.Exit(serve_runner(params, **overrides))
    folder = overrides.get("data_dir") or Settings.from_env().data_dir
    try:
        with EmbeddedRedis(folder) as redis:
            log.warning("embedded Redis running, data in %s", folder)
            code = serve_runner(params, redis_url=redis.url, **overrides)
    except PmrunnerError as error:
        raise CommandError(str(error)) from None
    raise click.exceptions.Exit(code)

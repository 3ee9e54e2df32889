"""``pmrunner api``: serve the HTTP API (Run a Monitor, Collection Runs API, health, metrics).

Settings come from ``PMRUNNER_*`` variables (Redis, the monitor source, the
API key in ``PMRUNNER_API_KEY``); ``--host`` and ``--port`` override
``PMRUNNER_API_HOST`` and ``PMRUNNER_API_PORT``. Without a key the command
refuses to start unless ``--insecure-no-auth`` is given.
"""

from __future__ import annotations

import click

from pmrunner.cli.output import CommandError
from pmrunner.errors import PmrunnerError


@click.command("api")
@click.option(
    "--host",
    metavar="ADDRESS",
    help="Address to listen on (default: PMRUNNER_API_HOST, else 127.0.0.1).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    metavar="N",
    help="Port to listen on (default: PMRUNNER_API_PORT, else 8080).",
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Serve without an API key when PMRUNNER_API_KEY is not set: anyone who reaches"
    " the port can start runs and read reports.",
)
def api_command(host: str | None, port: int | None, insecure_no_auth: bool) -> None:
    """Serve the HTTP API: Run a Monitor, the Collection Runs API, health and metrics."""
    from api.server import serve_api
    from worker.settings import Settings

    try:
        serve_api(Settings.from_env(), host=host, port=port, insecure_no_auth=insecure_no_auth)
    except PmrunnerError as error:
        raise CommandError(str(error)) from None

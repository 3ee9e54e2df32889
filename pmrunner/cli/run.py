"""``pmrunner run COLLECTION``: a drop-in for ``newman run``.

The same options, the same cli, JSON and JUnit reports, the same exit codes
(1 when the run failed, unless ``-x``). Bad input prints one ``error: ...``
line and exits 1; a usage error (an unknown option, a missing argument) keeps
click's exit 2. With ``--distributed`` the run goes to the workers instead of
running in this process, and reports the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

import click

from pmrunner.cli.exports import read_cookie_jar, write_exports
from pmrunner.cli.inputs import load_inputs
from pmrunner.cli.options import RunCommand, RunSettings, settings_from_params
from pmrunner.cli.output import CommandError, reporters_for
from pmrunner.errors import PmrunnerError

if TYPE_CHECKING:
    from runtime.results import Run


def execute(settings: RunSettings, stream: TextIO) -> Run:
    """Load the inputs, run the collection in this process with the reporters, write exports.

    Parameters:
        settings: the run command's settings.
        stream: where the cli reporter prints.
    """
    inputs = load_inputs(settings)
    if inputs.collection.has_scripts():
        from runtime.sandbox.pool import default_pool

        # The script context boots on V8's thread while the runtime loads.
        default_pool().boot_ahead()
    from runtime.events import Listeners
    from runtime.runner import run_collection

    run = run_collection(
        inputs.collection,
        environment=inputs.environment,
        globals=inputs.globals,
        iteration_data=inputs.iteration_data,
        options=settings.options,
        listener=Listeners(reporters_for(settings, inputs, stream)),
        cookies=read_cookie_jar(settings.cookie_jar) if settings.cookie_jar else None,
    )
    write_exports(settings, inputs, run)
    return run


def execute_anywhere(settings: RunSettings, stream: TextIO) -> Run:
    """Run here, or on the workers when ``settings.distributed`` says so."""
    if settings.distributed:
        from pmrunner.cli.distributed import execute_distributed

        return execute_distributed(settings, stream)
    return execute(settings, stream)


@click.command("run", cls=RunCommand)
@click.argument("collection")
@click.option(
    "-e", "--environment", metavar="SOURCE", help="Environment: a file, a URL or a Postman UID."
)
@click.option("-g", "--globals", "globals", metavar="SOURCE", help="Globals: a file or a URL.")
@click.option(
    "-d", "--iteration-data", metavar="FILE", help="Iteration data (JSON or CSV): one row a pass."
)
@click.option("-n", "--iteration-count", metavar="N", help="Number of iterations.")
@click.option(
    "--folder", multiple=True, metavar="NAME", help="Run only this folder or request (repeatable)."
)
@click.option(
    "--env-var",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set an environment variable (repeatable).",
)
@click.option(
    "--global-var", multiple=True, metavar="KEY=VALUE", help="Set a global variable (repeatable)."
)
@click.option("--export-environment", metavar="FILE", help="Write the final environment here.")
@click.option("--export-globals", metavar="FILE", help="Write the final globals here.")
@click.option("--delay-request", metavar="MS", help="Pause between requests, in milliseconds.")
@click.option("--timeout", metavar="MS", help="Time limit of the whole run in ms (0: none).")
@click.option("--timeout-request", metavar="MS", help="Time limit of each request in ms (0: none).")
@click.option("--timeout-script", metavar="MS", help="Time limit of each script in ms (0: none).")
@click.option("-k", "--insecure", is_flag=True, help="Do not verify TLS certificates.")
@click.option("--ignore-redirects", is_flag=True, help="Do not follow redirects.")
@click.option("--bail", metavar="[folder|failure]", help="Stop the run at the first failure.")
@click.option(
    "--max-response-size",
    metavar="BYTES",
    envvar="PMRUNNER_MAX_RESPONSE_SIZE",
    help="Largest response body read, on the wire and decoded; a larger one fails its"
    " request (default 52428800, Postman's 50 MB; 0: no limit).",
)
@click.option("-x", "--suppress-exit-code", is_flag=True, help="Exit 0 even when the run fails.")
@click.option("--working-dir", metavar="DIR", help="Where file references are resolved.")
@click.option("--ssl-extra-ca-certs", metavar="FILE", help="Extra trusted CA certificates (PEM).")
@click.option("--ssl-client-cert", metavar="FILE", help="Client certificate (PEM).")
@click.option("--ssl-client-key", metavar="FILE", help="Client certificate's key (PEM).")
@click.option("--ssl-client-passphrase", metavar="TEXT", help="Passphrase of the client key.")
@click.option(
    "-r",
    "--reporters",
    multiple=True,
    default=("cli",),
    metavar="NAMES",
    help="Reporters to use, comma separated: cli, json, junit, html (default: cli).",
)
@click.option("--reporter-json-export", metavar="PATH", help="Path (or folder) of the JSON report.")
@click.option(
    "--reporter-junit-export", metavar="PATH", help="Path (or folder) of the JUnit report."
)
@click.option("--reporter-html-export", metavar="PATH", help="Path (or folder) of the HTML report.")
@click.option("--silent", is_flag=True, help="Print nothing: no cli report.")
@click.option("--reporter-cli-no-summary", is_flag=True, help="Leave out the summary table.")
@click.option("--reporter-cli-no-failures", is_flag=True, help="Leave out the failure list.")
@click.option("--reporter-cli-no-banner", is_flag=True, help="Leave out the banner.")
@click.option(
    "--cookie-jar", metavar="FILE", help="Start with the cookies of this jar (tough-cookie JSON)."
)
@click.option("--export-cookie-jar", metavar="FILE", help="Write the final cookie jar here.")
@click.option(
    "--export-collection", metavar="FILE", help="Write the collection, final variables included."
)
@click.option("--color", default="auto", metavar="on|off|auto", help="Coloured output.")
@click.option("--no-color", is_flag=True, help="Same as --color off.")
@click.option("--disable-unicode", is_flag=True, help="Draw the report with ASCII only.")
@click.option("--verbose", is_flag=True, help="Show headers and bodies of requests and responses.")
@click.option(
    "--postman-api-key",
    metavar="KEY",
    envvar=["PMRUNNER_POSTMAN_API_KEY", "POSTMAN_API_KEY"],
    help="Postman API key: COLLECTION and -e may then be UIDs.",
)
@click.option(
    "--distributed",
    is_flag=True,
    help="Send the run to the workers through the broker (PMRUNNER_REDIS_URL) instead of"
    " running it here; reports, exports and exit codes stay the same.",
)
@click.option(
    "--wait",
    metavar="SECONDS",
    help="With --distributed: how long to wait for the run's report (default: --timeout,"
    " else the run deadline, plus 30 s).",
)
@click.option(
    "--resend-unsafe/--no-resend-unsafe",
    default=None,
    help="With --distributed: send a POST, PUT, PATCH or DELETE once more when the worker"
    " that sent it is lost, or never (outcome unknown); default: PMRUNNER_RESEND_UNSAFE.",
)
def run_command(**params: Any) -> None:
    """Run a Postman collection, as newman run does."""
    stream = sys.stdout  # click's test runner swaps it, so read it at call time
    try:
        settings = settings_from_params(params)
        run = execute_anywhere(settings, stream)
    except PmrunnerError as error:
        raise CommandError(str(error)) from None
    if run.failed and not settings.suppress_exit_code:
        raise click.exceptions.Exit(1)


def parse_run_options(argv: Sequence[str]) -> RunSettings:
    """The settings ``pmrunner run <argv>`` would use, without running anything.

    Raises click's ``UsageError`` for a usage error and ``InputError`` for a bad value.
    """
    with run_command.make_context("run", list(argv)) as context:
        return settings_from_params(context.params)

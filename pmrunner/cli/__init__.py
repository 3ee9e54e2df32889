"""The ``pmrunner`` command line.

- ``pmrunner run COLLECTION``: a drop-in for ``newman run`` (``--distributed``
  sends the run to the workers);
- ``pmrunner runner start``: a worker with its scheduler, running monitors;
- ``pmrunner api``: the HTTP API;
- ``pmrunner runs list|show``, ``pmrunner monitors list``: the run store.

Bad input prints one ``error: ...`` line and exits 1; a usage error (an
unknown option, a missing argument) keeps click's exit 2.
"""

from __future__ import annotations

import click

from pmrunner import __version__
from pmrunner.cli.api import api_command
from pmrunner.cli.demo import demo_api_command
from pmrunner.cli.distributed import execute_distributed, replay
from pmrunner.cli.exports import exported_variable, variable_export, write_exports, write_json
from pmrunner.cli.health import health_command
from pmrunner.cli.inputs import (
    POSTMAN_API_URL_ENV,
    POSTMAN_UID,
    RunInputs,
    apply_overrides,
    fetch_json_url,
    input_secrets,
    load_inputs,
    load_variables,
    postman_client,
    source_of,
)
from pmrunner.cli.listing import monitors_group, runs_group
from pmrunner.cli.options import (
    BAIL_MODIFIERS,
    COLOR_MODES,
    RunCommand,
    RunSettings,
    bail_enabled,
    color_mode,
    existing_file,
    existing_folder,
    key_value_pairs,
    normalise_bail,
    optional_path,
    run_options,
    settings_from_params,
    whole_number,
)
from pmrunner.cli.output import CommandError, use_color
from pmrunner.cli.run import execute, parse_run_options, run_command
from pmrunner.cli.runner import runner_group, start_command
from pmrunner.cli.up import up_command

__all__ = [
    "BAIL_MODIFIERS",
    "COLOR_MODES",
    "POSTMAN_API_URL_ENV",
    "POSTMAN_UID",
    "CommandError",
    "RunCommand",
    "RunInputs",
    "RunSettings",
    "api_command",
    "apply_overrides",
    "bail_enabled",
    "color_mode",
    "demo_api_command",
    "execute",
    "execute_distributed",
    "existing_file",
    "existing_folder",
    "exported_variable",
    "fetch_json_url",
    "health_command",
    "input_secrets",
    "key_value_pairs",
    "load_inputs",
    "load_variables",
    "main",
    "monitors_group",
    "normalise_bail",
    "optional_path",
    "parse_run_options",
    "pmrunner",
    "postman_client",
    "replay",
    "run_command",
    "run_options",
    "runner_group",
    "runs_group",
    "settings_from_params",
    "source_of",
    "start_command",
    "up_command",
    "use_color",
    "variable_export",
    "whole_number",
    "write_exports",
    "write_json",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="pmrunner")
def pmrunner() -> None:
    """pmrunner: a self-hosted runner for Postman API monitors."""


pmrunner.add_command(run_command)
pmrunner.add_command(runner_group)
pmrunner.add_command(api_command)
pmrunner.add_command(up_command)
pmrunner.add_command(demo_api_command)
pmrunner.add_command(health_command)
pmrunner.add_command(runs_group)
pmrunner.add_command(monitors_group)


def main() -> None:
    """The ``pmrunner`` console script."""
    pmrunner(prog_name="pmrunner")

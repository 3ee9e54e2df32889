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

import contextlib
import os
import sys
from typing import TYPE_CHECKING, NoReturn

import click

from pmrunner import __version__
from pmrunner.lazy import lazy_names

if TYPE_CHECKING:
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

# Each name of the package, and the module that defines it: imported on first
# use, so that ``pmrunner run`` loads neither the worker's, the API's nor the
# demo server's modules (about 20 ms of a local run's start).
_EXPORTED_FROM = {
    "api_command": "api",
    "demo_api_command": "demo",
    "execute_distributed": "distributed",
    "replay": "distributed",
    "exported_variable": "exports",
    "variable_export": "exports",
    "write_exports": "exports",
    "write_json": "exports",
    "health_command": "health",
    **dict.fromkeys(
        (
            "POSTMAN_API_URL_ENV",
            "POSTMAN_UID",
            "RunInputs",
            "apply_overrides",
            "fetch_json_url",
            "input_secrets",
            "load_inputs",
            "load_variables",
            "postman_client",
            "source_of",
        ),
        "inputs",
    ),
    "monitors_group": "listing",
    "runs_group": "listing",
    **dict.fromkeys(
        (
            "BAIL_MODIFIERS",
            "COLOR_MODES",
            "RunCommand",
            "RunSettings",
            "bail_enabled",
            "color_mode",
            "existing_file",
            "existing_folder",
            "key_value_pairs",
            "normalise_bail",
            "optional_path",
            "run_options",
            "settings_from_params",
            "whole_number",
        ),
        "options",
    ),
    "CommandError": "output",
    "use_color": "output",
    "execute": "run",
    "parse_run_options": "run",
    "run_command": "run",
    "runner_group": "runner",
    "start_command": "runner",
    "up_command": "up",
}
# The subcommands: name -> the package name of the command object.
_COMMANDS = {
    "run": "run_command",
    "runner": "runner_group",
    "api": "api_command",
    "up": "up_command",
    "demo-api": "demo_api_command",
    "health": "health_command",
    "runs": "runs_group",
    "monitors": "monitors_group",
}

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


__getattr__ = lazy_names(__name__, _EXPORTED_FROM)


class _Commands(click.Group):
    """The ``pmrunner`` group: a subcommand's module is imported when the command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _COMMANDS:
            command = __getattr__(_COMMANDS[cmd_name])
            self.add_command(command, cmd_name)
        return command


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="pmrunner")
def pmrunner() -> None:
    """pmrunner: a self-hosted runner for Postman API monitors."""


def main() -> None:
    """The ``pmrunner`` console script."""
    try:
        pmrunner(prog_name="pmrunner")
    except SystemExit as end:
        if _is_local_run(sys.argv[1:]):
            _exit_now(end)
        raise


def _is_local_run(args: list[str]) -> bool:
    return args[:1] == ["run"] and "--distributed" not in args


def _exit_now(end: SystemExit) -> NoReturn:
    """End a local run's process without tearing the interpreter down.

    Once its reports are written and closed, a local run has nothing left
    to do: no thread of its own runs on, no handler waits at exit. The
    teardown of the modules and of V8 took some 35 ms of its start-to-exit.
    """
    code = end.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)  # what the interpreter does with a message
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe
            stream.flush()
    os._exit(code or 0)

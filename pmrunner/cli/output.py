"""What the command line writes: error lines, colours and the run's reporters."""

from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING, Any, TextIO

import click

from pmrunner.cli.inputs import RunInputs, input_secrets
from pmrunner.cli.options import RunSettings

if TYPE_CHECKING:
    from runtime.events import RunListener


class CommandError(click.ClickException):
    """Bad input: printed as one ``error: ...`` line, exit code 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


def use_color(mode: str, stream: TextIO) -> bool:
    """``auto`` colours a terminal, unless ``NO_COLOR`` is set or the terminal is dumb."""
    if mode != "auto":
        return mode == "on"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def reporters_for(settings: RunSettings, inputs: RunInputs, stream: TextIO) -> list[RunListener]:
    """The reporters ``settings`` asks for, masking the inputs' secrets.

    Parameters:
        settings: the run command's settings (reporter names, paths, style).
        inputs: the loaded collection and variables (names, secrets).
        stream: where the cli reporter prints.
    """
    from runtime.reporters import build_reporters

    names = [n for n in settings.reporters if not (settings.silent and n == "cli")]
    if not names:
        return []
    return build_reporters(
        names,
        json_path=settings.json_export,
        junit_path=settings.junit_export,
        html_path=settings.html_export,
        stream=stream,
        color=use_color(settings.color, stream),
        verbose=settings.verbose,
        collection_name=inputs.collection.name,
        collection=inputs.collection,
        unicode=None if settings.unicode else False,
        secrets=input_secrets(settings, inputs),
        cli_sections=settings.cli_sections,
    )

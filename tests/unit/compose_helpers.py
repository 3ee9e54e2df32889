"""Reading docker-compose.yml and the Dockerfile as Docker would, without a Docker engine.

``interpolate`` does Compose's ``${NAME}``, ``${NAME:-default}`` and
``${NAME:?error}`` substitution; ``parse_command`` parses a service's
command with the real click commands of ``pmrunner`` and ``celery`` (and
Flower's), so an unknown option or a bad value fails as it would at start.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import yaml

from tests.integration.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def interpolate(value: Any, environ: dict[str, str]) -> Any:
    """Compose's variable substitution over a parsed document; ``$$`` stays a ``$``."""
    if isinstance(value, dict):
        return {key: interpolate(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environ) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, kind, argument = match.groups()
        if environ.get(name):
            return environ[name]
        if kind == "?":
            raise KeyError(f"{name}: {argument}")
        return argument if kind == "-" else ""

    return _VARIABLE.sub(substitute, value).replace("$$", "$")


def compose(environ: dict[str, str]) -> dict[str, Any]:
    """docker-compose.yml as Compose reads it with ``environ`` (anchors and ``<<`` merged)."""
    document = yaml.safe_load(COMPOSE.read_text())
    return dict(interpolate(document, environ))


def parse_command(argv: list[str]) -> tuple[str, click.Context]:
    """Parse a ``pmrunner`` or ``celery`` command line; the subcommand's name and context."""
    program, *args = argv
    if program == "pmrunner":
        from pmrunner.cli import pmrunner as group

        context = group.make_context("pmrunner", args)
    elif program == "celery":
        from celery.bin.base import CLIContext
        from celery.bin.celery import celery as group

        context = group.make_context("celery", args)
        app = context.params["app"]
        assert app == "worker", f"celery -A {app}: pmrunner's app is `-A worker`"
        from worker.app import app as celery_app

        context.obj = CLIContext(app=celery_app, no_color=True, workdir=None, quiet=True)
    else:
        raise AssertionError(f"unknown program {program!r}")
    name, command, rest = group.resolve_command(context, context.protected_args + context.args)
    assert command is not None, f"{program} has no command {name!r}"
    return str(name), command.make_context(str(name), rest, parent=context)


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, stage by stage, as (INSTRUCTION, arguments)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), " ".join(arguments.split())))
    return stages


def mounted_file(service: dict[str, Any], container_path: str) -> Path:
    """The file of the repository that a service's bind mount puts at ``container_path``."""
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if container_path.startswith(target.rstrip("/") + "/"):
            return ROOT / source / container_path[len(target.rstrip("/")) + 1 :]
    raise AssertionError(f"{container_path} is not mounted into the service")

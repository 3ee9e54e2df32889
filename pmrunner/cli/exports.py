"""``--export-environment`` and ``--export-globals``: the run's final variables as files."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pmrunner import __version__
from pmrunner.cli.inputs import RunInputs
from pmrunner.cli.options import RunSettings
from pmrunner.errors import InputError
from runtime.results import JSON, iso, utc_now

if TYPE_CHECKING:
    from runtime.loading import VariableFile
    from runtime.results import Run


def exported_variable(variable: JSON, original_types: Mapping[str, str]) -> JSON:
    """One variable of an export; a type the input file gave (``secret``) is kept.

    Scripts' scopes report every variable as ``any``; writing that back would
    turn a secret into a plain variable in the next run's input.
    """
    key = variable.get("key")
    kind = variable.get("type")
    if kind in (None, "", "any") and isinstance(key, str):
        kind = original_types.get(key, kind)
    return {
        "key": key,
        "value": variable.get("value"),
        "type": kind or "default",
        "enabled": variable.get("enabled", True) is not False,
    }


def variable_export(scope: str, source: VariableFile | None, values: list[JSON]) -> JSON:
    """Postman's export format of an environment or globals.

    Parameters:
        scope: "environment" or "globals".
        source: the variables as loaded (for the id, name and types), or None.
        values: the final variables of the run.
    """
    name = source.name if source and source.name else scope
    original_types = {
        str(v["key"]): str(v["type"]) for v in (source.values if source else []) if v.get("type")
    }
    return {
        "id": (source.id if source and source.id else None) or str(uuid.uuid4()),
        "name": name,
        "values": [exported_variable(v, original_types) for v in values if isinstance(v, dict)],
        "_postman_variable_scope": scope,
        "_postman_exported_at": iso(utc_now()),
        "_postman_exported_using": f"pmrunner/{__version__}",
    }


def write_json(path: Path, document: JSON, option: str) -> None:
    """Write ``document`` to ``path``; ``InputError`` names ``option`` when it cannot."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
        path.write_text(text + "\n", encoding="utf-8")
    except OSError as error:
        reason = error.strerror or str(error)
        raise InputError(f"{option}: cannot write {str(path)!r}: {reason}") from None


def write_exports(settings: RunSettings, inputs: RunInputs, run: Run) -> None:
    """``--export-environment`` and ``--export-globals``, with their real values.

    Exports are variable files meant to be fed to the next run, so secret
    values are kept (Postman's own exports keep them too); reports mask them.
    """
    if settings.export_environment:
        document = variable_export("environment", inputs.environment, run.environment)
        write_json(settings.export_environment, document, "--export-environment")
    if settings.export_globals:
        document = variable_export("globals", inputs.globals, run.globals)
        write_json(settings.export_globals, document, "--export-globals")

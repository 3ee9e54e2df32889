"""Exports of a run's final state as files: ``--export-environment``,
``--export-globals``, ``--export-collection`` and ``--export-cookie-jar``
(and the ``--cookie-jar`` it can be read back from)."""

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
    write_state_exports(settings, inputs, run)


TOUGH_COOKIE_VERSION = "tough-cookie@4.1.3"  # the serialization newman's jar writes and reads


def cookie_jar_document(cookies: list[JSON]) -> JSON:
    """A cookie jar as tough-cookie serializes it (what newman's ``--export-cookie-jar`` writes)."""
    return {
        "version": TOUGH_COOKIE_VERSION,
        "storeType": "MemoryCookieStore",
        "rejectPublicSuffixes": True,
        "cookies": [
            {k: v for k, v in cookie.items() if not (k == "expires" and v == "Infinity")}
            for cookie in cookies
        ],
    }


def read_cookie_jar(path: Path) -> list[JSON]:
    """The cookies of a jar file: tough-cookie's serialization, or a bare list of cookies.

    Raises:
        InputError: the file is not JSON or holds no list of cookies.
    """
    from runtime.loading import read_json

    document = read_json(path, error=InputError)
    cookies = document.get("cookies") if isinstance(document, dict) else document
    if not isinstance(cookies, list):
        raise InputError(f"--cookie-jar {str(path)!r}: expected a cookie jar with a 'cookies' list")
    return cookies


def collection_export(inputs: RunInputs, run: Run) -> JSON:
    """The collection as newman exports it: as loaded, with the run's final variables."""
    document = dict(inputs.collection.raw)
    document["variable"] = [
        {k: v for k, v in variable.items() if k in ("key", "value", "type", "disabled")}
        for variable in run.collection_variables
        if isinstance(variable, dict)
    ]
    return document


def write_state_exports(settings: RunSettings, inputs: RunInputs, run: Run) -> None:
    """``--export-collection`` and ``--export-cookie-jar`` (runs in this process only)."""
    if settings.export_collection:
        document = collection_export(inputs, run)
        write_json(settings.export_collection, document, "--export-collection")
    if settings.export_cookie_jar:
        document = cookie_jar_document(run.cookies)
        write_json(settings.export_cookie_jar, document, "--export-cookie-jar")

"""What ``pmrunner run`` reads: the collection, environment, globals and data rows.

A collection or environment may be a file, an http(s) URL, or (with a Postman
API key) a Postman UID. ``--env-var`` and ``--global-var`` are applied over
what was loaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pmrunner.cli.options import RunSettings
from pmrunner.errors import InputError
from pmrunner.structured_input import user_path
from runtime.results import JSON

if TYPE_CHECKING:
    from runtime.loading import VariableFile
    from runtime.model import Collection

POSTMAN_API_URL_ENV = "PMRUNNER_POSTMAN_BASE_URL"  # Settings.postman_base_url
# A Postman uid (``<owner>-<uuid>``) or id (``<uuid>``); anything else is a file name.
POSTMAN_UID = re.compile(r"(\d+-)?[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def fetch_json_url(url: str, what: str) -> JSON:
    """GET a JSON document (a collection, an environment) from an http(s) URL.

    Parameters:
        url: where to get it; only the part before ``?`` appears in errors.
        what: what the document is, for error messages ("collection", ...).
    """
    import requests

    shown = url.split("?", 1)[0]  # a query may hold an API key
    try:
        response = requests.get(url, timeout=30)
    except requests.RequestException as error:
        raise InputError(f"cannot fetch {what} from {shown}: {error.__class__.__name__}") from None
    if response.status_code >= 400:
        raise InputError(f"cannot fetch {what} from {shown}: HTTP {response.status_code}")
    try:
        data = json.loads(response.content)
    except ValueError:
        raise InputError(f"{what} at {shown} is not JSON") from None
    if not isinstance(data, dict):
        raise InputError(f"{what} at {shown} is not a JSON object")
    return data


def postman_client(api_key: str) -> Any:
    """A Postman API client, with the base URL and proxy of the settings."""
    from scheduler.postman import PostmanClient
    from worker.settings import Settings

    settings = Settings.from_env()
    return PostmanClient(api_key, base_url=settings.postman_base_url, proxy=settings.proxy)


def source_of(text: str, what: str, api_key: str | None) -> Path | JSON:
    """Where an input comes from: a file, a URL's JSON, or the Postman API by UID."""
    if text.startswith(("http://", "https://")):
        return fetch_json_url(text, what)
    path = user_path(text)
    if path.exists() or not api_key or not POSTMAN_UID.fullmatch(text):
        return path  # the loader names a missing file
    with postman_client(api_key) as client:
        fetched: JSON = (
            client.get_collection(text) if what == "collection" else client.get_environment(text)
        )
    return fetched


def load_variables(text: str | None, what: str, api_key: str | None) -> VariableFile | None:
    """An environment or globals from a file, a URL or (environments) a Postman UID."""
    from runtime.loading import load_environment, load_globals, variable_file_from_json

    if text is None:
        return None
    source = source_of(text, what, api_key if what == "environment" else None)
    if isinstance(source, dict):
        label = f"{what} {text.split('?', 1)[0]}"
        return variable_file_from_json(source, label=label)
    return load_environment(source) if what == "environment" else load_globals(source)


def apply_overrides(
    variables: VariableFile | None, pairs: Sequence[tuple[str, str]]
) -> VariableFile | None:
    """Set ``--env-var``/``--global-var`` values over the loaded ones (enabled, in order)."""
    from runtime.loading import VariableFile

    if not pairs:
        return variables
    result = variables or VariableFile(name=None, id=None, values=[])
    for key, value in pairs:
        existing = [v for v in result.values if v.get("key") == key]
        for variable in existing:
            variable["value"] = value
            variable["enabled"] = True
        if not existing:
            result.values.append({"key": key, "value": value, "type": "default", "enabled": True})
    return result


@dataclass
class RunInputs:
    """What a run reads: the collection, variables and data rows."""

    collection: Collection
    environment: VariableFile | None
    globals: VariableFile | None
    iteration_data: list[dict[str, Any]] | None


def load_inputs(settings: RunSettings) -> RunInputs:
    """Load everything ``settings`` names, with the ``--env-var``/``--global-var`` overrides."""
    from runtime.loading import load_collection, load_iteration_data

    source = source_of(settings.collection, "collection", settings.postman_api_key)
    collection = load_collection(source)
    environment = load_variables(settings.environment, "environment", settings.postman_api_key)
    globals_ = load_variables(settings.globals, "globals", None)
    data = load_iteration_data(settings.iteration_data) if settings.iteration_data else None
    return RunInputs(
        collection=collection,
        environment=apply_overrides(environment, settings.env_vars),
        globals=apply_overrides(globals_, settings.global_vars),
        iteration_data=data,
    )


def input_secrets(settings: RunSettings, inputs: RunInputs) -> set[str]:
    """Values reports must mask from the start: secret variables, passphrase, API key."""
    from runtime.masking import secret_variable_values

    variables = [*(inputs.environment.values if inputs.environment else [])]
    variables += inputs.globals.values if inputs.globals else []
    found = secret_variable_values(variables)
    found.update(v for v in (settings.options.tls.client_passphrase, settings.postman_api_key) if v)
    return found

"""pmrunner: a self-hosted runner for Postman API monitors, distributed on Celery.

The public surface, for code that embeds pmrunner::

    from pmrunner import load_collection, run_collection, RunOptions

    run = run_collection(load_collection("api.postman_collection.json"))
    print(run.failed, run.stats())

Errors are re-exported from ``pmrunner.errors``. Runtime names load on first
use, so importing ``pmrunner.errors`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from pmrunner import _imports

# Before anything else: our top-level packages must not resolve to the working directory's.
_imports.install()

from pmrunner.errors import (  # noqa: E402 (after the finder)
    CollectionFormatError,
    ConfigurationError,
    DataFileError,
    InputError,
    PmrunnerError,
    PostmanApiError,
    PostmanAuthError,
    PostmanNotFoundError,
    PostmanRateLimitError,
    PostmanResponseError,
    PostmanUnavailableError,
    RequestError,
    SandboxError,
    ScriptMemoryError,
    ScriptTimeoutError,
    UnsupportedAuthError,
)

__version__ = "0.1.0"

_LAZY = {
    "load_collection": "runtime.loading",
    "load_environment": "runtime.loading",
    "load_globals": "runtime.loading",
    "load_iteration_data": "runtime.loading",
    "VariableFile": "runtime.loading",
    "run_collection": "runtime.runner",
    "RunOptions": "runtime.options",
    "Timeouts": "runtime.options",
    "TLSOptions": "runtime.options",
    "ScriptLimits": "runtime.options",
    "Run": "runtime.results",
    "Execution": "runtime.results",
    "Settings": "worker.settings",
}

__all__ = [
    "CollectionFormatError",
    "ConfigurationError",
    "DataFileError",
    "Execution",
    "InputError",
    "PmrunnerError",
    "PostmanApiError",
    "PostmanAuthError",
    "PostmanNotFoundError",
    "PostmanRateLimitError",
    "PostmanResponseError",
    "PostmanUnavailableError",
    "RequestError",
    "Run",
    "RunOptions",
    "SandboxError",
    "ScriptLimits",
    "ScriptMemoryError",
    "ScriptTimeoutError",
    "Settings",
    "TLSOptions",
    "Timeouts",
    "UnsupportedAuthError",
    "VariableFile",
    "__version__",
    "load_collection",
    "load_environment",
    "load_globals",
    "load_iteration_data",
    "run_collection",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pmrunner' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

"""pmrunner: a self-hosted runner for Postman API monitors, distributed on Celery."""

from pmrunner.errors import (
    CollectionFormatError,
    ConfigurationError,
    DataFileError,
    InputError,
    PmrunnerError,
    PostmanApiError,
    RequestError,
    SandboxError,
    ScriptMemoryError,
    ScriptTimeoutError,
    UnsupportedAuthError,
)

__version__ = "0.1.0"

__all__ = [
    "CollectionFormatError",
    "ConfigurationError",
    "DataFileError",
    "InputError",
    "PmrunnerError",
    "PostmanApiError",
    "RequestError",
    "SandboxError",
    "ScriptMemoryError",
    "ScriptTimeoutError",
    "UnsupportedAuthError",
    "__version__",
]

"""The public surface is pinned: a change to it is a deliberate change to this test."""

from __future__ import annotations

import pmrunner
from pmrunner import errors


def test_exported_names() -> None:
    assert sorted(pmrunner.__all__) == sorted(
        [
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
    )
    for name in pmrunner.__all__:
        assert getattr(pmrunner, name) is not None


def test_every_error_has_one_root_and_a_docstring() -> None:
    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert len(classes) >= 16
    for cls in classes:
        assert issubclass(cls, errors.PmrunnerError), cls
        assert cls.__doc__ and "\n" not in cls.__doc__.strip(), cls
        assert cls.__name__ in errors.__doc__, f"{cls.__name__} missing from the tree"


def test_a_local_run_does_not_import_celery() -> None:
    """``pmrunner run`` and the settings load without Celery; ``worker.app`` is the app."""
    import subprocess
    import sys

    code = (
        "import sys, pmrunner.cli.run, tasks.egress, worker\n"
        "assert 'celery' not in sys.modules, 'celery imported'\n"
        "from celery import Celery\n"
        "assert isinstance(worker.app, Celery) and isinstance(worker.app, Celery)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

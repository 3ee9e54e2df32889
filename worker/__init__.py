"""The Celery app (``celery -A worker``), its settings and request routing.

``app`` and ``create_app`` load on first use: a process that needs only the
settings (``pmrunner run``, the egress policy) does not import Celery.
"""

import importlib
from typing import Any

# First: pmrunner's packages resolve before the working directory's modules,
# which ``celery -A worker`` puts first on sys.path (see pmrunner._imports).
import pmrunner  # noqa: F401
from worker.settings import Settings

__all__ = ["Settings", "app", "create_app"]


def __getattr__(name: str) -> Any:
    # Celery's ``-A worker`` reads ``worker.app``; importing it here, lazily,
    # keeps the package import as cheap as the settings module.
    if name in ("app", "create_app"):
        module = importlib.import_module("worker.app")
        # Importing the submodule bound ``worker.app`` to it: bind the app instead.
        globals().update(app=module.app, create_app=module.create_app)
        return globals()[name]
    raise AttributeError(f"module 'worker' has no attribute {name!r}")

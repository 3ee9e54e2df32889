"""pmrunner's top-level packages resolve to pmrunner's own, never to the working directory's.

The code lives in top-level folders (``api``, ``runtime``, ``scheduler``,
``store``, ``tasks``, ``worker``) that import each other by those names.
Celery puts the working directory first on ``sys.path`` while it loads
``-A worker`` and the task modules (``python -m`` puts it there for good),
so a user's own ``tasks.py`` or ``store.py`` next to where the worker starts
would shadow pmrunner's and break it (``'tasks' is not a package``).

:func:`install` puts a finder first on ``sys.meta_path`` that resolves
exactly those names from where pmrunner is installed, whatever ``sys.path``
says; every other name is left to the usual finders. Both ways in run it
first: the ``pmrunner`` package (the command line, and everything that
imports ``pmrunner.errors``) and the ``worker`` package (``celery -A
worker``).

Where the packages are: the wheel installs only ``pmrunner`` and ``worker``
(what ``celery -A worker`` needs) at the top of ``site-packages``, and the
other five under ``pmrunner/_packages/``, so no generic ``api`` or ``tasks``
lands in ``site-packages``; a source checkout (and an editable install) has
them next to ``pmrunner/``. The finder looks in that order.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

# Installed under pmrunner/_packages/ by the wheel (build_sandbox.py reads this list).
NESTED_PACKAGES = ("api", "runtime", "scheduler", "store", "tasks")
# Every top-level name the finder owns: ``worker`` stays at the top for ``celery -A worker``.
OWN_PACKAGES = (*NESTED_PACKAGES, "worker")
NESTED_DIR = "_packages"


class OwnPackages(importlib.abc.MetaPathFinder):
    """Finds pmrunner's top-level packages in ``locations`` only.

    Parameters:
        locations: folders searched in order: the wheel's nested folder,
            then the folder ``pmrunner`` itself is in.
    """

    def __init__(self, locations: Sequence[str]) -> None:
        self.locations = list(locations)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if path is not None or fullname not in OWN_PACKAGES:
            return None  # submodules resolve inside their package already
        return importlib.machinery.PathFinder.find_spec(fullname, self.locations)


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once per process)."""
    if any(isinstance(finder, OwnPackages) for finder in sys.meta_path):
        return
    here = Path(__file__).resolve().parent
    sys.meta_path.insert(0, OwnPackages([str(here / NESTED_DIR), str(here.parent)]))

"""Names of a package imported from their modules on first use (PEP 562).

A package whose names come from modules that a common command never needs
(``pmrunner run`` needs neither the worker's commands nor the HTML
reporter) keeps a table of name -> module and sets its module-level
``__getattr__`` to :func:`lazy_names`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, defined_in: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports each name from its module.

    Parameters:
        package: the package's ``__name__``.
        defined_in: each lazily exported name -> its module, relative to ``package``.
    The value is kept in the package's namespace, so it is looked up once.
    """

    def __getattr__(name: str) -> Any:
        module = defined_in.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__

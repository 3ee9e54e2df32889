"""Hatch build hook: the sandbox bundle, and where the wheel puts pmrunner's packages.

Before building, Postman's sandbox bundle is fetched and verified: editable
installs and wheels both get ``runtime/sandbox/vendor/*.browser.js``; see
``runtime/sandbox/bundle.py`` for where it comes from and how it is pinned.

A wheel installs only ``pmrunner`` and ``worker`` at the top of
``site-packages``; the other top-level folders of the checkout (``api``,
``runtime``, ``scheduler``, ``store``, ``tasks``) go under
``pmrunner/_packages/``, where ``pmrunner._imports`` finds them. An editable
install keeps using the checkout itself.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# Not part of an installed package: caches, and the sandbox's download.
_SKIPPED_SUFFIXES = (".pyc", ".tgz")


def _load(path: Path, name: str) -> ModuleType:
    """A module of the checkout, by path: nothing is installed while building."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nested_files(root: Path) -> dict[str, str]:
    """Source path → path in the wheel, for every file of the packages nested under pmrunner."""
    imports = _load(root / "pmrunner" / "_imports.py", "_pmrunner_imports")
    target = f"pmrunner/{imports.NESTED_DIR}"
    files: dict[str, str] = {}
    for package in imports.NESTED_PACKAGES:
        for path in sorted((root / package).rglob("*")):
            relative = path.relative_to(root)
            hidden = any(part.startswith(".") or part == "__pycache__" for part in relative.parts)
            if path.is_file() and not hidden and not path.name.endswith(_SKIPPED_SUFFIXES):
                files[str(path)] = f"{target}/{relative.as_posix()}"
    return files


class CustomBuildHook(BuildHookInterface):  # type: ignore[misc, type-arg, unused-ignore]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name == "sdist":
            return
        root = Path(self.root)
        bundle_module = _load(root / "runtime" / "sandbox" / "bundle.py", "_pmrunner_bundle")
        try:
            bundle_module.ensure_bundle()
        except bundle_module.BundleError as error:
            # One sentence, not a traceback: pip shows the build's output as it is.
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(1) from None
        if self.target_name == "wheel" and version != "editable":
            build_data["force_include"].update(nested_files(root))

"""Hatch build hook: fetch and verify Postman's sandbox bundle before building.

Editable installs and wheels both get ``runtime/sandbox/vendor/*.browser.js``;
see ``runtime/sandbox/bundle.py`` for where it comes from and how it is pinned.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name == "sdist":
            return
        path = Path(self.root) / "runtime" / "sandbox" / "bundle.py"
        spec = importlib.util.spec_from_file_location("_pmrunner_bundle", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        try:
            bundle = module.ensure_bundle()
        except module.BundleError as error:
            # One sentence, not a traceback: pip shows the build's output as it is.
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(1) from None
        if self.target_name == "wheel" and version != "editable":
            relative = bundle.relative_to(Path(self.root)).as_posix()
            build_data["force_include"][str(bundle)] = relative

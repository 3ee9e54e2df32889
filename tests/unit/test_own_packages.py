"""A user's own ``tasks.py`` (or ``store.py`` ...) in the working directory shadows nothing of ours.

``python -c`` puts the working directory first on ``sys.path``, as Celery
does while it loads ``-A worker`` and its task modules. From a folder
holding modules named like pmrunner's packages (each raising when
imported), pmrunner's own are imported, through the entry points a process
starts from: ``pmrunner`` and ``worker``.
"""

from __future__ import annotations

import importlib.machinery
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pmrunner._imports import NESTED_PACKAGES, OWN_PACKAGES, OwnPackages

ROOT = Path(__file__).resolve().parents[2]
SHADOWS = ("tasks", "store", "runtime", "api", "scheduler")
IMPORTS = [
    "tasks.run",
    "tasks.schedule",
    "store.runs",
    "runtime.loading",
    "api.app",
    "scheduler.catalog",
]


def shadowing_folder(folder: Path) -> Path:
    for name in SHADOWS:
        (folder / f"{name}.py").write_text(f"raise RuntimeError('the user\\'s own {name}.py')\n")
    return folder


def imported_files(cwd: Path, first: str) -> dict[str, str]:
    """Import ``first``, then our modules, as ``python -c`` in ``cwd``; module → its file."""
    code = (
        f"import importlib, json; importlib.import_module({first!r}); "
        f"print(json.dumps({{n: importlib.import_module(n).__file__ for n in {IMPORTS!r}}}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout))


@pytest.mark.parametrize("entry", ["worker", "pmrunner", "pmrunner.cli"])
def test_our_packages_resolve_before_the_working_directorys_modules(
    tmp_path: Path, entry: str
) -> None:
    files = imported_files(shadowing_folder(tmp_path), entry)
    for module, file in files.items():
        top = module.split(".")[0]
        assert Path(file).is_relative_to(ROOT / top), (module, file)


def test_the_shadowing_modules_would_be_imported_without_the_finder(tmp_path: Path) -> None:
    # What the finder prevents: plain Python takes the working directory's tasks.py.
    done = subprocess.run(
        [sys.executable, "-c", "import tasks"],
        cwd=shadowing_folder(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "the user's own tasks.py" in done.stderr


def test_the_finder_owns_only_our_top_level_names(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "__init__.py").write_text("")
    finder = OwnPackages([str(tmp_path)])
    spec = finder.find_spec("tasks")
    assert spec is not None and spec.origin == str(tmp_path / "tasks" / "__init__.py")
    assert finder.find_spec("json") is None
    assert finder.find_spec("tasks.run", path=[str(tmp_path / "tasks")]) is None
    assert set(OWN_PACKAGES) == {*NESTED_PACKAGES, "worker"}
    # Importing pmrunner (this test did) put it on sys.meta_path, ahead of the path finder.
    ours = next(n for n, finder in enumerate(sys.meta_path) if isinstance(finder, OwnPackages))
    assert ours < sys.meta_path.index(importlib.machinery.PathFinder)

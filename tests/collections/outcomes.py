"""Outcomes of a run in a form two runners can be compared on.

Both pmrunner's and newman's JSON reports are reduced to the same list: for
each execution, the item name and its assertions (name, passed), and for
each script error, the item, the error name and the script kind. The
self-checking collections' expected outcomes were recorded from newman with
``python bench/compare_newman.py --record``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COLLECTIONS = Path(__file__).resolve().parent
MANIFEST = json.loads((COLLECTIONS / "manifest.json").read_text())


def collection_files(name: str) -> dict[str, Path]:
    """The collection file and its companions (environment, globals, data)."""
    files = {"collection": COLLECTIONS / f"{name}.postman_collection.json"}
    files.update({kind: COLLECTIONS / file for kind, file in MANIFEST[name].items()})
    return files


def run_arguments(name: str, base_url: str) -> list[str]:
    """newman-style arguments to run one collection against ``base_url``."""
    files = collection_files(name)
    args = [str(files["collection"]), "--env-var", f"baseUrl={base_url}"]
    flags = {"environment": "-e", "globals": "-g", "data": "-d"}
    for kind, flag in flags.items():
        if kind in files:
            args += [flag, str(files[kind])]
    return [*args, "--working-dir", str(COLLECTIONS)]


def outcomes(report: dict[str, Any]) -> dict[str, Any]:
    """Reduce a newman-shaped JSON report to comparable outcomes."""
    run = report["run"]
    executions = [
        {
            "item": execution["item"]["name"],
            "assertions": [
                [assertion["assertion"], "error" not in assertion or not assertion["error"]]
                for assertion in execution.get("assertions") or []
            ],
        }
        for execution in _distinct(run["executions"])
    ]
    script_errors = sorted(
        [failure["source"]["name"], failure["error"]["name"], failure["at"].split(" in ")[-1]]
        for failure in run["failures"]
        if not failure["at"].startswith("assertion")
    )
    return {"executions": executions, "scriptErrors": script_errors}


def _distinct(executions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per executed item.

    newman lists an execution once more for each ``pm.sendRequest`` it made
    (the same cursor ``ref``), and lists no execution for a skipped request.
    """
    distinct: list[dict[str, Any]] = []
    for execution in executions:
        if execution.get("skipped"):
            continue
        ref = (execution.get("cursor") or {}).get("ref")
        if distinct and ref and (distinct[-1].get("cursor") or {}).get("ref") == ref:
            continue
        distinct.append(execution)
    return distinct


def expected(name: str) -> dict[str, Any]:
    return json.loads((COLLECTIONS / "expected" / f"{name}.json").read_text())

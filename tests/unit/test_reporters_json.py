"""The json reporter on runs built by hand: newman's shape, failures, masking."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pmrunner.errors import InputError
from runtime.events import Listeners
from runtime.masking import MASK
from runtime.model import parse_collection
from runtime.reporters import JsonReporter, build_report
from runtime.results import Run, ScriptError
from tests.unit.reporting_helpers import BASE, SECRET, replay, sample_run


def write_json_report(run: Run, path: Path, **kwargs: object) -> dict[str, object]:
    replay(run, Listeners([JsonReporter(path, **kwargs)]))  # type: ignore[arg-type]
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_json_report_has_newmans_shape(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "report.json"
    report = write_json_report(sample_run(), path)
    assert set(report) == {"collection", "environment", "globals", "run"}
    assert report["collection"]["info"]["name"] == "Demo API"  # type: ignore[index]
    assert [i["name"] for i in report["collection"]["item"]] == [  # type: ignore[index]
        "List users",
        "Create user",
        "Broken",
    ]
    run = report["run"]
    assert set(run) == {"stats", "timings", "executions", "transfers", "failures", "error"}
    assert run["stats"]["assertions"] == {"total": 4, "pending": 1, "failed": 1}  # type: ignore[index]
    timings = run["timings"]  # type: ignore[index]
    assert (timings["responseAverage"], timings["responseMin"], timings["responseMax"]) == (
        20,
        10,
        30,
    )
    assert timings["responseSd"] == 10
    assert timings["dnsAverage"] == timings["firstByteSd"] == 0
    assert timings["completed"] - timings["started"] == 1234
    assert run["transfers"] == {"responseTotal": 1234}  # type: ignore[index]
    assert run["error"] is None  # type: ignore[index]


def test_json_report_executions_and_failures(tmp_path: Path) -> None:
    report = write_json_report(sample_run(), tmp_path / "r.json")
    executions = report["run"]["executions"]  # type: ignore[index]
    second = executions[1]
    assert second["item"] == {"id": "item-create-user", "name": "Create user"}
    assert second["cursor"]["position"] == 1
    assert second["cursor"]["iteration"] == 0
    assert second["request"]["method"] == "GET"
    assert second["request"]["url"]["raw"] == f"{BASE}/users"
    assert second["request"]["url"]["port"] == "8000"
    assert {"key": "Authorization", "value": f"Bearer {MASK}"} in second["request"]["header"]
    response = second["response"]
    assert (response["code"], response["status"], response["body"]) == (
        404,
        "Not Found",
        '{"id": 1}',
    )
    assert response["header"][0] == {"key": "Content-Type", "value": "application/json"}
    assert (response["responseTime"], response["responseSize"]) == (30, 34)
    assert second["assertions"][0] == {"assertion": "responds", "skipped": False}
    assert second["assertions"][1]["error"]["message"] == "expected 404 to equal 201"
    assert second["assertions"][2]["skipped"] is True
    assert "response" not in executions[2]

    first, second_failure = report["run"]["failures"]  # type: ignore[index]
    assert first["at"] == "assertion:1 in test-script"
    assert first["error"]["name"] == "AssertionError"
    assert first["error"]["test"] == "status is 201"
    assert first["source"] == {"id": "item-create-user", "name": "Create user"}
    assert first["parent"] == {"name": "Users"}
    assert first["cursor"]["ref"] == second["cursor"]["ref"]
    assert second_failure["at"] == "request"
    assert second_failure["error"]["message"] == "connection refused"


def test_json_report_masks_secrets_everywhere(tmp_path: Path) -> None:
    run = sample_run()
    run.executions[0].response.body = f"echo {SECRET}"  # type: ignore[union-attr]
    path = tmp_path / "r.json"
    report = write_json_report(run, path)
    assert SECRET not in path.read_text(encoding="utf-8")
    values = report["environment"]["values"]  # type: ignore[index]
    assert values[0] == {"key": "token", "value": MASK, "type": "secret", "enabled": True}
    assert values[1]["value"] == "127.0.0.1"
    assert report["environment"]["name"] == "Local"  # type: ignore[index]
    assert report["environment"]["_postman_variable_scope"] == "environment"  # type: ignore[index]
    assert report["globals"]["values"] == [{"key": "g", "value": "1"}]  # type: ignore[index]


def test_json_report_includes_the_collection_with_auth_masked(tmp_path: Path) -> None:
    collection = parse_collection(
        {
            "info": {"_postman_id": "col-1", "name": "Demo API", "schema": "v2.1"},
            "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "raw-token"}]},
            "item": [
                {
                    "name": "Users",
                    "id": "folder-users",
                    "item": [
                        {
                            "name": "Create user",
                            "id": "item-create-user",
                            "request": {
                                "url": BASE,
                                "method": "POST",
                                "auth": {
                                    "type": "basic",
                                    "basic": [{"key": "password", "value": "pw-raw"}],
                                },
                            },
                        },
                    ],
                },
                {"name": "List users", "id": "item-list-users", "request": BASE},
            ],
        }
    )
    path = tmp_path / "r.json"
    report = write_json_report(sample_run(), path, collection=collection)
    assert report["collection"]["item"][0]["name"] == "Users"  # type: ignore[index]
    assert report["collection"]["auth"]["bearer"][0]["value"] == MASK  # type: ignore[index]
    text = path.read_text(encoding="utf-8")
    assert "raw-token" not in text
    assert "pw-raw" not in text
    assert report["collection"]["variable"] == []  # type: ignore[index]
    failure = report["run"]["failures"][0]  # type: ignore[index]
    assert failure["parent"] == {"id": "folder-users", "name": "Users"}
    item = report["run"]["executions"][1]["item"]  # type: ignore[index]
    assert failure["source"] == item
    assert (item["id"], item["name"], item["request"]["method"]) == (
        "item-create-user",
        "Create user",
        "POST",
    )
    assert item["request"]["auth"]["basic"] == [{"key": "password", "value": MASK}]


def test_json_report_records_errors_outside_requests() -> None:
    run = sample_run()
    run.run_errors.append(ScriptError("run", "TimeoutError", "run timed out"))
    report = build_report(run)
    assert report["run"]["error"] == {"name": "TimeoutError", "message": "run timed out"}
    assert report["run"]["failures"][-1]["at"] == "run"
    assert report["run"]["failures"][-1]["source"] == {"id": "col-1", "name": "Demo API"}


def test_json_report_write_error_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    target = blocker / "report.json"
    with pytest.raises(InputError, match=re.escape(str(target))):
        JsonReporter(target).run_finished(sample_run())

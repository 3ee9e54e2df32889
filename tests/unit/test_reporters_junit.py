"""The junit reporter on runs built by hand: suites per request, class names, masking."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from runtime.events import Listeners
from runtime.masking import MASK
from runtime.reporters import JunitReporter, render_junit
from runtime.reporters.junit import class_name
from tests.unit.reporting_helpers import SECRET, replay, sample_run


def test_junit_report_is_well_formed_with_suites_per_request(tmp_path: Path) -> None:
    path = tmp_path / "out" / "report.xml"
    replay(sample_run(), Listeners([JunitReporter(path)]))
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    assert root.get("name") == "Demo API"
    assert root.get("time") == "1.234"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["List users", "Users / Create user", "Broken"]
    assert root.get("tests") == str(sum(int(s.get("tests", "")) for s in suites))
    create = suites[1]
    assert (create.get("id"), create.get("tests"), create.get("failures")) == (
        "item-create-user",
        "3",
        "1",
    )
    assert create.get("timestamp") == "2024-05-01T12:00:00.002Z"
    assert create.get("time") == "0.030"
    cases = {case.get("name"): case for case in create.findall("testcase")}
    assert cases["responds"].find("failure") is None
    failure = cases["status is 201"].find("failure")
    assert failure is not None
    assert failure.get("type") == "AssertionFailure"
    assert failure.get("message") == "expected 404 to equal 201"
    assert (failure.text or "").startswith("Failed 1 times.")
    assert cases["later"].find("skipped") is not None
    assert cases["responds"].get("classname") == "UsersCreateUser"
    assert "Test description: status is 201." in (failure.text or "")
    error = suites[2].find("testcase/error")
    assert error is not None
    assert (error.get("type"), error.get("message")) == ("ConnectionError", "connection refused")
    assert suites[2].get("errors") == "1"
    assert "ConnectionError: connection refused" in (suites[2].findtext("system-err") or "")
    assert create.find("system-err") is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Folder / Missing", "FolderMissing"),
        ("GET users by ID", "GetUsersById"),
        ("XMLHttpRequest", "XmlHttpRequest"),
        ("v2 users", "V2Users"),
        ("!!!", ""),
    ],
)
def test_class_names_follow_newman(name: str, expected: str) -> None:
    assert class_name(name) == expected


def test_junit_folds_iterations_into_one_suite_per_request() -> None:
    root = ET.fromstring(render_junit(sample_run(iterations=3)))
    suites = root.findall("testsuite")
    assert len(suites) == 3
    failure = suites[1].find("testcase[@name='status is 201']/failure")
    assert failure is not None
    assert (failure.text or "").startswith("Failed 3 times.")
    assert len(suites[2].findall("testcase/error")) == 3


def test_junit_survives_control_characters_and_masks_secrets() -> None:
    run = sample_run()
    assertion = run.executions[1].assertions[1]
    assertion.error = f"bad \x00\x1b byte <&> and {SECRET}"
    text = render_junit(run)
    root = ET.fromstring(text)
    message = root.find(".//failure")
    assert message is not None
    assert message.get("message") == f"bad \ufffd\ufffd byte <&> and {MASK}"
    assert SECRET not in text

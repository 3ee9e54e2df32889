"""Reporters (cli, json, junit), their factory, and masking, on runs built by hand."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pmrunner.errors import InputError
from runtime.events import Listeners
from runtime.masking import (
    MASK,
    mask,
    mask_auth_params,
    mask_headers,
    mask_json,
    run_secrets,
)
from runtime.model import parse_collection
from runtime.reporters import (
    CliReporter,
    JsonReporter,
    JunitReporter,
    build_report,
    build_reporters,
    default_report_path,
    parse_reporter_names,
    render_junit,
)
from runtime.reporters.cli import format_bytes, format_ms
from runtime.reporters.junit import class_name
from runtime.results import (
    Assertion,
    Execution,
    RequestRecord,
    ResponseRecord,
    Run,
    ScriptError,
)

START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SECRET = "s3cr3t-T0ken"
BASE = "http://127.0.0.1:8000"


def make_execution(
    number: int,
    name: str,
    *,
    iteration: int = 0,
    path: tuple[str, ...] = (),
    assertions: list[Assertion] | None = None,
    errors: list[ScriptError] | None = None,
    code: int | None = 200,
    time_ms: float = 10.0,
    size: int = 100,
    url: str = f"{BASE}/users",
    body: str = '{"id": 1}',
) -> Execution:
    response = None
    if code is not None:
        response = ResponseRecord(
            code=code,
            status="OK" if code == 200 else "Not Found",
            headers=[("Content-Type", "application/json"), ("Set-Cookie", "sid=abc")],
            body=body,
            size=size,
            response_time_ms=time_ms,
        )
    return Execution(
        id=number,
        item_id=f"item-{name.lower().replace(' ', '-')}",
        item_name=name,
        iteration=iteration,
        path=path,
        request=RequestRecord(
            method="GET",
            url=url,
            headers=[("Authorization", "Bearer abc.def"), ("Accept", "*/*")],
        ),
        response=response,
        assertions=assertions or [],
        errors=errors or [],
        started_at=START + timedelta(milliseconds=number),
    )


def sample_run(iterations: int = 1) -> Run:
    """Three requests per iteration: a passing one, a failing one in a folder, an error."""
    executions: list[Execution] = []
    for iteration in range(iterations):
        base = iteration * 3
        executions += [
            make_execution(
                base + 1,
                "List users",
                iteration=iteration,
                assertions=[Assertion("status is 200", True)],
                time_ms=10,
                size=1200,
            ),
            make_execution(
                base + 2,
                "Create user",
                iteration=iteration,
                path=("Users",),
                code=404,
                time_ms=30,
                size=34,
                assertions=[
                    Assertion("responds", True),
                    Assertion(
                        "status is 201",
                        False,
                        error="expected 404 to equal 201",
                        error_name="AssertionError",
                    ),
                    Assertion("later", False, skipped=True),
                ],
            ),
            make_execution(
                base + 3,
                "Broken",
                iteration=iteration,
                url="http://127.0.0.1:9/down",
                code=None,
                errors=[ScriptError("request", "ConnectionError", "connection refused")],
            ),
        ]
    return Run(
        collection_id="col-1",
        collection_name="Demo API",
        executions=executions,
        iterations=iterations,
        started_at=START,
        finished_at=START + timedelta(milliseconds=1234),
        environment=[
            {"key": "token", "value": SECRET, "type": "secret", "enabled": True},
            {"key": "host", "value": "127.0.0.1", "type": "default", "enabled": True},
        ],
        globals=[{"key": "g", "value": "1"}],
        environment_name="Local",
    )


def replay(run: Run, listener: Listeners | CliReporter) -> None:
    """Call a listener the way the runner does."""
    listener.run_started(run)
    iteration = None
    for execution in run.executions:
        if execution.iteration != iteration:
            iteration = execution.iteration
            listener.iteration_started(run, iteration)
        listener.execution_started(run, execution)
        listener.execution_finished(run, execution)
    listener.run_finished(run)


def cli_output(run: Run, **options: bool) -> str:
    stream = io.StringIO()
    color = options.pop("color", False)
    replay(run, CliReporter(stream, color=color, **options))
    return stream.getvalue()


# --- masking ---------------------------------------------------------------------------


def test_mask_replaces_longest_secret_first() -> None:
    assert mask("a abcdef b abc", ["abc", "abcdef"]) == f"a {MASK} b {MASK}"


def test_mask_ignores_empty_secrets_and_keeps_other_text() -> None:
    assert mask("nothing to hide", ["", "absent"]) == "nothing to hide"


def test_mask_catches_url_encoded_secrets() -> None:
    url = "http://127.0.0.1/?key=p%40ss%20word&q=p+ss"
    assert mask(url, ["p@ss word"]) == f"http://127.0.0.1/?key={MASK}&q=p+ss"


def test_mask_headers_always_masks_authorization_but_keeps_its_scheme() -> None:
    headers = [
        ("Authorization", "Bearer abc.def"),
        ("proxy-authorization", "Basic dXNlcjpwYXNz"),
        ("X-Api-Key", "public-value"),
        ("X-Api-Key", SECRET),
        ("Cookie", f"sid={SECRET}; theme=dark"),
    ]
    assert mask_headers(headers, [SECRET]) == [
        ("Authorization", f"Bearer {MASK}"),
        ("proxy-authorization", f"Basic {MASK}"),
        ("X-Api-Key", "public-value"),
        ("X-Api-Key", MASK),
        ("Cookie", f"sid={MASK}; theme=dark"),
    ]


def test_mask_json_masks_every_string_leaf() -> None:
    document = {"a": [SECRET, {"b": f"x{SECRET}x"}], "n": 3, SECRET: None}
    masked = mask_json(document, [SECRET])
    assert masked == {"a": [MASK, {"b": f"x{MASK}x"}], "n": 3, SECRET: None}


def test_mask_auth_params_hides_credentials_but_not_references_or_names() -> None:
    collection = {
        "auth": {
            "type": "basic",
            "basic": [
                {"key": "username", "value": "alice"},
                {"key": "password", "value": "hunter2"},
            ],
        },
        "item": [
            {
                "request": {
                    "auth": {
                        "type": "apikey",
                        "apikey": [
                            {"key": "key", "value": "X-Api-Key"},
                            {"key": "value", "value": "k-123"},
                            {"key": "in", "value": "header"},
                        ],
                    }
                }
            },
            {"request": {"auth": {"type": "bearer", "bearer": {"token": "{{token}}"}}}},
        ],
    }
    masked = mask_auth_params(collection)
    assert masked["auth"]["basic"] == [
        {"key": "username", "value": "alice"},
        {"key": "password", "value": MASK},
    ]
    apikey = masked["item"][0]["request"]["auth"]["apikey"]
    assert [p["value"] for p in apikey] == ["X-Api-Key", MASK, "header"]
    assert masked["item"][1]["request"]["auth"]["bearer"] == {"token": "{{token}}"}
    assert collection["auth"]["basic"][1]["value"] == "hunter2"  # the input is untouched


def test_run_secrets_are_the_secret_typed_variables() -> None:
    assert run_secrets(sample_run()) == {SECRET}


# --- cli reporter ----------------------------------------------------------------------


def test_format_bytes_and_durations_like_newman() -> None:
    assert [format_bytes(n) for n in (616, 1200, 1000, 3_456_789)] == [
        "616B",
        "1.2kB",
        "1kB",
        "3.5MB",
    ]
    assert [format_ms(n) for n in (0.5, 45.7, 1234, 125_000)] == [
        "500µs",
        "45ms",
        "1.2s",
        "2m 5.0s",
    ]


def test_cli_prints_requests_assertions_and_errors_as_they_run() -> None:
    lines = cli_output(sample_run()).splitlines()
    assert lines[:3] == ["pmrunner", "", "Demo API"]
    assert "→ List users" in lines
    assert f"  GET {BASE}/users [200 OK, 1.2kB, 10ms]" in lines
    assert "  ✓  status is 200" in lines
    folder = lines.index("❏ Users")
    assert lines[folder + 1] == "↳ Create user"
    assert lines[folder + 2] == f"  GET {BASE}/users [404 Not Found, 34B, 30ms]"
    assert "  1. status is 201" in lines
    assert "  -  later (skipped)" in lines
    assert "  GET http://127.0.0.1:9/down [errored]" in lines
    assert "  2. ConnectionError in request" in lines
    assert not any(line.startswith("Iteration") for line in lines)


def test_cli_summary_table_counts_and_timings() -> None:
    output = cli_output(sample_run())
    rows = {
        match[0]: (int(match[1]), int(match[2]))
        for match in re.findall(r"│\s+([a-z-]+) │\s+(\d+) │\s+(\d+) │", output)
    }
    assert rows == {
        "iterations": (1, 0),
        "requests": (3, 1),
        "test-scripts": (0, 0),
        "prerequest-scripts": (0, 0),
        "assertions": (4, 1),
    }
    assert "│ total run duration: 1.2s" in output
    assert "│ total data received: 1.2kB (approx)" in output
    assert "average response time: 20ms [min: 10ms, max: 30ms, s.d.: 10ms]" in output
    lines = output.splitlines()
    top = next(n for n, line in enumerate(lines) if line.startswith("┌"))
    bottom = next(n for n, line in enumerate(lines) if line.startswith("└"))
    box = lines[top : bottom + 1]
    assert len(box) == 19
    assert len({len(line) for line in box}) == 1, "every line of the box has the same width"
    assert all(line[0] in "┌├│└" and line[-1] in "┐┤│┘" for line in box)


def test_cli_failure_list_is_numbered_with_location() -> None:
    lines = cli_output(sample_run()).splitlines()
    heading = next(n for n, line in enumerate(lines) if line.strip().startswith("#  failure"))
    body = [line.rstrip() for line in lines[heading + 2 :]]
    assert body[0].split() == ["1.", "AssertionError", "status", "is", "201"]
    indent = body[0].index("status")
    assert body[1:4] == [
        " " * indent + "expected 404 to equal 201",
        " " * indent + "at assertion:1 in test-script",
        " " * indent + 'inside "Users / Create user"',
    ]
    assert body[5].split()[:3] == ["2.", "ConnectionError", "connection"]
    assert body[6].strip() == "at request"


def test_cli_prints_iterations_when_more_than_one() -> None:
    lines = cli_output(sample_run(iterations=2)).splitlines()
    assert [line for line in lines if line.startswith("Iteration")] == [
        "Iteration 1/2",
        "Iteration 2/2",
    ]
    assert "  4. ConnectionError in request" in lines


def test_cli_color_off_has_no_ansi_and_on_has_some() -> None:
    assert "\x1b[" not in cli_output(sample_run(), color=False)
    assert "\x1b[" in cli_output(sample_run(), color=True)


def test_cli_verbose_shows_masked_headers_and_bodies() -> None:
    run = sample_run()
    run.executions[0].response.body = f'{{"token": "{SECRET}"}}'  # type: ignore[union-attr]
    output = cli_output(run, verbose=True)
    assert f"Authorization: Bearer {MASK}" in output
    assert "Accept: */*" in output
    assert "Set-Cookie: sid=abc" in output
    assert f'{{"token": "{MASK}"}}' in output
    assert SECRET not in output
    assert "abc.def" not in output
    assert "Authorization" not in cli_output(run, verbose=False)


def test_cli_prints_console_lines_and_masks_them() -> None:
    run = sample_run()
    run.executions[0].console = [("log", f"token is {SECRET}"), ("warn", "careful")]
    output = cli_output(run)
    assert f"  │ token is {MASK}" in output
    assert "  │ warn: careful" in output


def test_cli_falls_back_to_ascii_when_the_stream_cannot_encode_unicode() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    replay(sample_run(), CliReporter(stream, color=False))
    text = raw.getvalue().decode("ascii")
    assert "-> List users" in text
    assert "+-----" in text


def test_cli_reports_errors_outside_requests() -> None:
    run = sample_run()
    run.run_errors.append(ScriptError("run", "TimeoutError", "run timed out after 5 ms"))
    output = cli_output(run)
    assert "TimeoutError in run: run timed out after 5 ms" in output
    assert re.search(r" 3\.\s+TimeoutError\s+run timed out after 5 ms", output)


# --- json reporter ---------------------------------------------------------------------


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


# --- junit reporter --------------------------------------------------------------------


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


# --- build_reporters -------------------------------------------------------------------


def test_parse_reporter_names_splits_dedupes_and_rejects_unknown() -> None:
    assert parse_reporter_names(["cli,json", " junit ", "json"]) == ["cli", "json", "junit"]
    with pytest.raises(InputError, match="unknown reporter 'html'"):
        parse_reporter_names(["cli,html"])
    with pytest.raises(InputError, match="no reporter"):
        parse_reporter_names([","])


def test_build_reporters_uses_default_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    reporters = build_reporters(
        ["cli,json", "junit"],
        json_path=None,
        junit_path=None,
        stream=io.StringIO(),
        color=False,
        verbose=False,
        collection_name="My API: v2",
    )
    cli, json_reporter, junit = reporters
    assert isinstance(cli, CliReporter)
    assert isinstance(json_reporter, JsonReporter)
    assert isinstance(junit, JunitReporter)
    for reporter, extension in ((json_reporter, "json"), (junit, "xml")):
        assert reporter.path.parent == tmp_path / "newman"
        assert re.fullmatch(
            rf"My-API-v2-\d{{4}}(-\d\d){{5}}-\d{{3}}\.{extension}", reporter.path.name
        )
    replay(sample_run(), Listeners(reporters))
    assert json_reporter.path.is_file()
    assert junit.path.is_file()


def test_build_reporters_honours_paths_and_folders(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    json_reporter, junit = build_reporters(
        ["json", "junit"],
        json_path=tmp_path / "exact.json",
        junit_path=folder,
        stream=io.StringIO(),
        color=False,
        verbose=False,
        collection_name="Demo",
    )
    assert isinstance(json_reporter, JsonReporter)
    assert isinstance(junit, JunitReporter)
    assert json_reporter.path == tmp_path / "exact.json"
    assert junit.path.parent == folder
    assert junit.path.suffix == ".xml"


def test_default_report_path_stamps_the_time(tmp_path: Path) -> None:
    moment = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    path = default_report_path("Demo", "json", folder=tmp_path, now=moment)
    assert path == tmp_path / "Demo-2024-01-02-03-04-05-678.json"

"""The cli reporter on runs built by hand: live output, summary, failures, colour."""

from __future__ import annotations

import io
import re

from runtime.masking import MASK
from runtime.reporters import CliReporter
from runtime.reporters.cli import format_bytes, format_ms
from runtime.results import ScriptError
from tests.unit.reporting_helpers import BASE, SECRET, cli_output, replay, sample_run


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
    # newman counts the status line and headers too: 1200 + 19 + 32 + 21 bytes.
    assert f"  GET {BASE}/users [200 OK, 1.3kB, 10ms]" in lines
    assert "  ✓  status is 200" in lines
    folder = lines.index("❏ Users")
    assert lines[folder + 1] == "↳ Create user"
    assert lines[folder + 2] == f"  GET {BASE}/users [404 Not Found, 113B, 30ms]"
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

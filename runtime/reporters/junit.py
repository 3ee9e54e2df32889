"""newman's JUnit XML report.

One ``<testsuite>`` per request (named ``Folder / Request``), one
``<testcase>`` per assertion name, with the iterations of a data-driven run
folded together: a failure says how many times it failed and why. Script and
request errors become ``<error>`` elements, skipped assertions ``<skipped/>``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from runtime.events import NullListener
from runtime.masking import mask, run_secrets
from runtime.reporters.json_report import item_title, run_duration_ms, write_text_file
from runtime.results import Execution, Run, iso

# Characters XML 1.0 does not allow, even escaped; ElementTree would write them
# and produce a file no parser accepts.
_INVALID_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """Text safe to put in an XML document: invalid characters replaced by U+FFFD."""
    return _INVALID_XML.sub("\ufffd", text)


def seconds(milliseconds: float) -> str:
    return f"{milliseconds / 1000:.3f}"


def class_name(name: str) -> str:
    """A test-class name as newman derives it: ``Folder / Get user`` -> ``FolderGetUser``."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+|[^\W\d_]+", name)
    return "".join(word[:1].upper() + word[1:].lower() for word in words)


@dataclass
class _Case:
    """One assertion name of one request, over all its iterations."""

    name: str
    runs: int = 0
    skipped: int = 0
    failures: list[tuple[Execution, str, str]] = field(default_factory=list)


@dataclass
class _Suite:
    """One request, over all its iterations."""

    first: Execution
    executions: list[Execution] = field(default_factory=list)
    cases: dict[str, _Case] = field(default_factory=dict)

    @property
    def mean_time_ms(self) -> float:
        """Mean response time over the iterations (0 for one without a response)."""
        times = [e.response.response_time_ms if e.response else 0.0 for e in self.executions]
        return sum(times) / len(times)


def group_by_item(run: Run) -> list[_Suite]:
    """The run's executions grouped by request, in the order requests first ran."""
    suites: dict[str, _Suite] = {}
    for execution in run.executions:
        suite = suites.setdefault(execution.item_id, _Suite(first=execution))
        suite.executions.append(execution)
        for assertion in execution.assertions:
            case = suite.cases.setdefault(assertion.name, _Case(assertion.name))
            case.runs += 1
            if assertion.skipped:
                case.skipped += 1
            elif not assertion.passed:
                message = assertion.error or f"expected '{assertion.name}' to be truthy"
                case.failures.append((execution, message, assertion.stack or ""))
    return list(suites.values())


class JunitDocument:
    """Builds the XML tree of a run; ``secrets`` are masked in every text and attribute."""

    def __init__(self, run: Run, secrets: set[str]) -> None:
        self.run = run
        self.secrets = secrets

    def text(self, value: str) -> str:
        return xml_text(mask(value, self.secrets))

    def build(self) -> ET.Element:
        root = ET.Element("testsuites", name=self.text(self.run.collection_name))
        total = 0
        for suite in group_by_item(self.run):
            element = self.suite_element(suite)
            total += int(element.get("tests", "0"))
            root.append(element)
        root.set("tests", str(total))
        root.set("time", seconds(run_duration_ms(self.run)))
        return root

    def suite_element(self, suite: _Suite) -> ET.Element:
        title = item_title(suite.first)
        element = ET.Element(
            "testsuite",
            name=self.text(title),
            id=suite.first.item_id,
            timestamp=iso(suite.first.started_at) or "",
        )
        time = seconds(suite.mean_time_ms)
        classname = self.text(class_name(title) or class_name(self.run.collection_name))
        failures = skipped = 0
        for case in suite.cases.values():
            element.append(self.case_element(suite, case, time, classname))
            failures += 1 if case.failures else 0
            skipped += 1 if case.skipped == case.runs else 0
        errors = self.error_elements(suite, time, classname)
        element.extend(errors)
        if errors:
            # newman reports errors only here; CI tools that read <error> see them above.
            ET.SubElement(element, "system-err").text = self.text(self.error_log(suite))
        element.set("tests", str(len(suite.cases) + len(errors)))
        element.set("failures", str(failures))
        element.set("errors", str(len(errors)))
        element.set("skipped", str(skipped))
        element.set("time", time)
        return element

    def case_element(self, suite: _Suite, case: _Case, time: str, classname: str) -> ET.Element:
        element = ET.Element("testcase", name=self.text(case.name), time=time, classname=classname)
        if case.failures:
            first_message = case.failures[0][1]
            failure = ET.SubElement(
                element, "failure", type="AssertionFailure", message=self.text(first_message)
            )
            failure.text = self.text(self.failure_details(suite, case))
        elif case.skipped == case.runs:
            ET.SubElement(element, "skipped")
        return element

    def failure_details(self, suite: _Suite, case: _Case) -> str:
        """newman's failure text, plus the iteration and URL of every failure."""
        _, first_message, first_stack = case.failures[0]
        lines = [
            f"Failed {len(case.failures)} times.",
            f"Collection JSON ID: {self.run.collection_id}.",
            f"Collection name: {self.run.collection_name}.",
            f"Request name: {item_title(suite.first)}.",
            f"Test description: {case.name}.",
            f"Error message: {first_message}.",
        ]
        if first_stack:
            lines.append(f"Stacktrace: {first_stack}.")
        for execution, message, _ in case.failures:
            url = execution.request.url if execution.request else ""
            lines.append(f"Iteration {execution.iteration}: {message} ({url}).")
        return "\n".join(lines)

    def error_elements(self, suite: _Suite, time: str, classname: str) -> list[ET.Element]:
        """One testcase per script or request error, named after where it happened."""
        found: list[ET.Element] = []
        several = len(suite.executions) > 1
        for execution in suite.executions:
            for error in execution.errors:
                name = f"{error.kind} (iteration {execution.iteration})" if several else error.kind
                case = ET.Element("testcase", name=self.text(name), time=time, classname=classname)
                detail = ET.SubElement(
                    case, "error", type=self.text(error.name), message=self.text(error.message)
                )
                detail.text = self.text(
                    f"Request name: {item_title(execution)}.\nError: {error.name}: {error.message}"
                )
                found.append(case)
        return found

    def error_log(self, suite: _Suite) -> str:
        """newman's ``<system-err>`` text: the errors of every iteration."""
        parts = []
        for execution in suite.executions:
            if execution.errors:
                lines = [f"Iteration: {execution.iteration}"]
                lines += [
                    f"{error.kind}: {error.name}: {error.message}" for error in execution.errors
                ]
                parts.append("\n".join(lines) + "\n\n---\n")
        return "".join(parts)


def render_junit(run: Run, secrets: Iterable[str] = ()) -> str:
    """The JUnit XML document of a finished run, as text (UTF-8 declared).

    Parameters:
        run: the finished run.
        secrets: values to mask besides the run's secret variables.
    """
    root = JunitDocument(run, {*secrets, *run_secrets(run)}).build()
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'


class JunitReporter(NullListener):
    """Writes newman's JUnit XML report to ``path`` when the run finishes.

    Parameters:
        path: the report file; its parent folders are created.
        secrets: values to mask besides the run's secret variables.
    """

    def __init__(self, path: Path | str, secrets: Iterable[str] = ()) -> None:
        self.path = Path(path)
        self.secrets = frozenset(secrets)

    def run_finished(self, run: Run) -> None:
        document = render_junit(run, self.secrets)

        def write(stream: TextIO) -> None:
            stream.write(document)

        write_text_file(self.path, write)

"""Reporters: newman's cli, json, junit and html reports of a run, chosen by name.

listeners = build_reporters(["cli", "json"], json_path=None, junit_path=None,
                            stream=sys.stdout, color=True, verbose=False,
                            collection_name="My API")
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pmrunner.errors import InputError
from pmrunner.lazy import lazy_names
from runtime.events import RunListener
from runtime.model import Collection
from runtime.results import utc_now

if TYPE_CHECKING:
    from runtime.reporters.cli import CliReporter
    from runtime.reporters.html import HtmlReporter, render_html
    from runtime.reporters.json_report import JsonReporter, build_report
    from runtime.reporters.junit import JunitReporter, render_junit

# Each reporter's module is imported when a run asks for that reporter (or the
# name is first read here): a run writing JSON alone does not load the XML and
# HTML writers (16 ms of CPU), nor a worker that only shapes stored runs.
_DEFINED_IN = {
    "CliReporter": "cli",
    "HtmlReporter": "html",
    "render_html": "html",
    "JsonReporter": "json_report",
    "build_report": "json_report",
    "JunitReporter": "junit",
    "render_junit": "junit",
}

REPORTER_NAMES = ("cli", "json", "junit", "html")
DEFAULT_REPORT_FOLDER = "newman"  # where newman puts reports; pipelines look there

__all__ = [
    "DEFAULT_REPORT_FOLDER",
    "REPORTER_NAMES",
    "CliReporter",
    "CliSections",
    "HtmlReporter",
    "JsonReporter",
    "JunitReporter",
    "build_report",
    "build_reporters",
    "default_report_path",
    "parse_reporter_names",
    "render_html",
    "render_junit",
]


__getattr__ = lazy_names(__name__, _DEFINED_IN)


@dataclass(frozen=True)
class CliSections:
    """The parts of the cli report to print (newman's ``--reporter-cli-no-*`` options)."""

    banner: bool = True
    summary: bool = True
    failures: bool = True


def parse_reporter_names(names: Iterable[str]) -> list[str]:
    """Reporter names from options such as ``-r cli,json -r junit``, in order, once each.

    Raises ``InputError`` for a name that is not a reporter, or when none is given.
    """
    chosen: list[str] = []
    for option in names:
        for name in option.split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name not in REPORTER_NAMES:
                known = ", ".join(REPORTER_NAMES)
                raise InputError(f"--reporters: unknown reporter {name!r} (known: {known})")
            if name not in chosen:
                chosen.append(name)
    if not chosen:
        raise InputError("--reporters: no reporter named")
    return chosen


def _file_safe(name: str) -> str:
    """A collection name made safe for a file name."""
    safe = re.sub(r"[^\w.-]+", "-", name, flags=re.UNICODE).strip("-.")
    return safe or "collection"


def default_report_path(
    collection_name: str, extension: str, *, folder: Path | None = None, now: datetime | None = None
) -> Path:
    """``newman/<collection>-<timestamp>.<extension>`` under the working directory.

    Parameters:
        collection_name: the collection's name (made safe for a file name).
        extension: "json", "xml" or "html".
        folder: where to put it instead of ``./newman``.
        now: the time to stamp (for tests); the current UTC time otherwise.
    """
    moment = now or utc_now()
    stamp = moment.strftime("%Y-%m-%d-%H-%M-%S-") + f"{moment.microsecond // 1000:03d}"
    base = folder if folder is not None else Path.cwd() / DEFAULT_REPORT_FOLDER
    return base / f"{_file_safe(collection_name)}-{stamp}.{extension}"


def report_path(
    given: Path | str | None, collection_name: str, extension: str, now: datetime
) -> Path:
    """The path a report goes to: the one given, a default name inside a folder given, or
    the default path when none is given."""
    if given is None or str(given) == "":
        return default_report_path(collection_name, extension, now=now)
    text = str(given)
    path = Path(given)
    if path.is_dir() or text.endswith(("/", "\\")):
        return default_report_path(collection_name, extension, folder=path, now=now)
    return path


def build_reporters(
    names: list[str],
    *,
    json_path: Path | str | None,
    junit_path: Path | str | None,
    stream: TextIO,
    color: bool,
    verbose: bool,
    collection_name: str,
    collection: Collection | None = None,
    unicode: bool | None = None,
    secrets: Iterable[str] = (),
    html_path: Path | str | None = None,
    cli_sections: CliSections | None = None,
) -> list[RunListener]:
    """The reporters named, ready to be given to the runner (through ``Listeners``).

    Parameters:
        names: reporter names; each entry may be a comma list (``"cli,json"``).
        json_path: the JSON report's path (a folder puts a default name in it).
        junit_path: the JUnit report's path, likewise.
        stream: where the cli reporter prints.
        color: ANSI colours for the cli reporter.
        verbose: headers and bodies in the cli reporter.
        collection_name: for default report names.
        collection: the collection that runs, included in the JSON report.
        unicode: False draws the cli report with ASCII; None decides from ``stream``.
        secrets: values every reporter masks, besides the run's secret variables.
        html_path: the HTML report's path, likewise.
        cli_sections: which parts the cli reporter prints (all by default).
    """
    sections = cli_sections or CliSections()
    now = utc_now()
    secrets = frozenset(secrets)  # each reporter reads it; a generator would serve only one
    reporters: list[RunListener] = []
    for name in parse_reporter_names(names):
        if name == "cli":
            from runtime.reporters.cli import CliReporter

            reporters.append(
                CliReporter(
                    stream,
                    color=color,
                    verbose=verbose,
                    unicode=unicode,
                    secrets=secrets,
                    banner=sections.banner,
                    summary=sections.summary,
                    failures=sections.failures,
                )
            )
        elif name == "json":
            from runtime.reporters.json_report import JsonReporter

            path = report_path(json_path, collection_name, "json", now)
            reporters.append(JsonReporter(path, collection=collection, secrets=secrets))
        elif name == "junit":
            from runtime.reporters.junit import JunitReporter

            path = report_path(junit_path, collection_name, "xml", now)
            reporters.append(JunitReporter(path, secrets=secrets))
        elif name == "html":
            from runtime.reporters.html import HtmlReporter

            path = report_path(html_path, collection_name, "html", now)
            reporters.append(HtmlReporter(path, secrets=secrets))
    return reporters

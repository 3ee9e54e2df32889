"""newman's command-line report: requests and assertions as they run, then a summary.

    pmrunner

    Collection

    ❏ Folder
    ↳ Request
      GET http://127.0.0.1:8000/ [200 OK, 1.2kB, 45ms]
      ✓  status is 200
      1. body has an id

followed by the summary table (iterations, requests, scripts, assertions,
timings) and the numbered list of failures.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TextIO

import click

from runtime.events import NullListener
from runtime.masking import MASK, mask_headers, run_secrets, secret_pattern
from runtime.reporters.json_report import (
    LocatedFailure,
    item_title,
    located_failures,
    newman_response_size,
    response_timings,
    run_duration_ms,
    total_received,
)
from runtime.results import Execution, Run


@dataclass(frozen=True)
class Symbols:
    """The characters the report draws with; ASCII ones for streams that cannot encode more."""

    root: str
    sub: str
    folder: str
    ok: str
    top_left: str
    top_mid: str
    top_right: str
    mid_left: str
    cross: str
    mid_right: str
    bottom_left: str
    bottom_mid: str
    bottom_right: str
    horizontal: str
    vertical: str
    up_mid: str  # ┴: where the columns of the table end


UNICODE = Symbols("→", "↳", "❏", "✓", "┌", "┬", "┐", "├", "┼", "┤", "└", "┴", "┘", "─", "│", "┴")
ASCII = Symbols("->", "->", "#", "OK", "+", "+", "+", "+", "+", "+", "+", "+", "+", "-", "|", "+")


def symbols_for(stream: TextIO) -> Symbols:
    """Unicode symbols when the stream's encoding can write them, else ASCII."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    sample = "".join(str(value) for value in vars(UNICODE).values()) + "µ"
    try:
        sample.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return ASCII
    return UNICODE


def format_bytes(size: float) -> str:
    """Sizes as newman prints them: ``616B``, ``1.2kB``, ``3.4MB``."""
    if size < 1000:
        return f"{int(size)}B"
    units = ("kB", "MB", "GB")
    power = 1
    while power < len(units) and size >= 1000 ** (power + 1):
        power += 1
    return f"{size / 1000**power:.1f}".removesuffix(".0") + units[power - 1]


def format_ms(milliseconds: float, *, micro: str = "µs") -> str:
    """Durations as newman prints them: ``850µs``, ``45ms``, ``1.2s``, ``2m 5.0s``."""
    if milliseconds < 1:
        return f"{int(milliseconds * 1000)}{micro}"
    if milliseconds < 1000:
        return f"{int(milliseconds)}ms"
    if milliseconds < 60_000:
        return f"{milliseconds / 1000:.1f}s"
    minutes, rest = divmod(milliseconds, 60_000)
    return f"{int(minutes)}m {rest / 1000:.1f}s"


_STAT_ROWS = (
    ("iterations", "iterations"),
    ("requests", "requests"),
    ("test-scripts", "testScripts"),
    ("prerequest-scripts", "prerequestScripts"),
    ("assertions", "assertions"),
)


def summary_table(run: Run, symbols: Symbols) -> list[str]:
    """newman's summary box: executed/failed per kind, then durations and sizes."""
    stats = run.stats()
    rows = [(label, stats[key]["total"], stats[key]["failed"]) for label, key in _STAT_ROWS]
    micro = "µs" if symbols is UNICODE else "us"
    timings = response_timings(run)
    notes = [
        f"total run duration: {format_ms(run_duration_ms(run), micro=micro)}",
        f"total data received: {format_bytes(total_received(run))} (approx)",
        "average response time: {} [min: {}, max: {}, s.d.: {}]".format(
            *(
                format_ms(timings[key], micro=micro)
                for key in ("responseAverage", "responseMin", "responseMax", "responseSd")
            )
        ),
    ]
    number_width = max(10, *(len(str(v)) + 2 for _, total, failed in rows for v in (total, failed)))
    label_width = 25
    widest_note = max(len(note) for note in notes) + 2
    label_width = max(label_width, widest_note - 2 * (number_width + 1))
    widths = (label_width, number_width, number_width)
    inner = sum(widths) + 2
    s = symbols

    def rule(left: str, middle: str, right: str) -> str:
        return left + middle.join(s.horizontal * width for width in widths) + right

    def cells(values: Iterable[object]) -> str:
        pairs = zip(values, widths, strict=True)
        padded = (f" {str(value).rjust(width - 2)} " for value, width in pairs)
        return s.vertical + s.vertical.join(padded) + s.vertical

    lines = [rule(s.top_left, s.top_mid, s.top_right), cells(("", "executed", "failed"))]
    for row in rows:
        lines += [rule(s.mid_left, s.cross, s.mid_right), cells(row)]
    lines.append(rule(s.mid_left, s.up_mid, s.mid_right))
    for n, note in enumerate(notes):
        if n:
            lines.append(s.mid_left + s.horizontal * inner + s.mid_right)
        lines.append(f"{s.vertical} {note.ljust(inner - 2)} {s.vertical}")
    lines.append(s.bottom_left + s.horizontal * inner + s.bottom_right)
    return lines


def failure_detail(failure: LocatedFailure) -> list[str]:
    """The detail column of one failure: what, why, where."""
    lines = [failure.test] if failure.test is not None else []
    lines += failure.message.splitlines() or [""]
    lines.append(f"at {failure.at}")
    if failure.execution is not None:
        lines.append(f'inside "{item_title(failure.execution)}"')
    return lines


def failure_table(failures: list[LocatedFailure]) -> list[str]:
    """newman's numbered failure list: ``#  failure  detail``."""
    number_width = len(str(len(failures))) + 1
    name_width = max(len("failure"), *(len(f.name) for f in failures))
    indent = " " * (1 + number_width + 2 + name_width + 2)
    lines = [f" {'#'.rjust(number_width)}  {'failure'.ljust(name_width)}  detail", ""]
    for number, failure in enumerate(failures, start=1):
        first, *rest = failure_detail(failure)
        label = f"{number}.".rjust(number_width)
        lines.append(f" {label}  {failure.name.ljust(name_width)}  {first}")
        lines += [f"{indent}{line}" for line in rest]
        lines.append("")
    return lines


class CliReporter(NullListener):
    """Prints a run as newman's cli reporter does.

    Parameters:
        stream: where to print (usually standard output).
        color: whether to use ANSI colours.
        verbose: also print request and response headers and bodies (masked).
        unicode: draw with Unicode symbols; None decides from the stream's encoding.
        secrets: values to mask from the start (secret variables of the input files);
            the run's secret variables are added as it goes.
        banner: print the "pmrunner" banner first (newman's --reporter-cli-no-banner).
        summary: print the summary table (--reporter-cli-no-summary).
        failures: print the failure table at the end (--reporter-cli-no-failures).
    """

    def __init__(
        self,
        stream: TextIO,
        color: bool,
        verbose: bool = False,
        unicode: bool | None = None,
        secrets: Iterable[str] = (),
        *,
        banner: bool = True,
        summary: bool = True,
        failures: bool = True,
    ) -> None:
        self.stream = stream
        self.banner = banner
        self.summary = summary
        self.failures = failures
        self.color = color
        self.verbose = verbose
        use_unicode = symbols_for(stream) is UNICODE if unicode is None else unicode
        self.symbols = UNICODE if use_unicode else ASCII
        self.secrets = frozenset(secrets)
        self._secrets = secret_pattern(self.secrets)
        self._announced: set[int] = set()
        self._current_path: tuple[str, ...] = ()
        self._failure_count = 0

    # --- output helpers ---

    def _print(self, text: str = "", **style: Any) -> None:
        """Print one line (or several), secrets masked, styled when colour is on."""
        if self._secrets is not None:
            text = self._secrets.sub(MASK, text)
        if self.color and style and text:
            text = click.style(text, **style)
        self.stream.write(text + "\n")

    def _refresh_secrets(self, run: Run) -> None:
        self._secrets = secret_pattern(self.secrets | run_secrets(run))

    # --- listener ---

    def run_started(self, run: Run) -> None:
        self._refresh_secrets(run)
        if self.banner:
            self._print("pmrunner")
            self._print()
        self._print(run.collection_name, bold=True)

    def iteration_started(self, run: Run, iteration: int) -> None:
        if run.iterations > 1:
            self._print()
            self._print(f"Iteration {iteration + 1}/{run.iterations}", dim=True)
        self._current_path = ()

    def execution_started(self, run: Run, execution: Execution) -> None:
        self._announce(execution)

    def _announce(self, execution: Execution) -> None:
        """Print the request's name (and its folder when it changed), once per execution."""
        if execution.id in self._announced:
            return
        self._announced.add(execution.id)
        self._print()
        if execution.path and execution.path != self._current_path:
            self._print(f"{self.symbols.folder} {' / '.join(execution.path)}")
        self._current_path = execution.path
        arrow = self.symbols.sub if execution.path else self.symbols.root
        self._print(f"{arrow} {execution.item_name}")

    def execution_finished(self, run: Run, execution: Execution) -> None:
        self._refresh_secrets(run)
        self._announce(execution)
        self._announced.discard(execution.id)
        if execution.skipped:
            self._print("  (skipped)", dim=True)
            return
        self._print_request_line(execution)
        if self.verbose:
            self._print_exchange(execution)
        for level, text in execution.console:
            self._print_console(level, text)
        for error in execution.errors:
            self._failure_count += 1
            self._print(f"  {self._failure_count}. {error.name} in {error.kind}", fg="red")
            for line in error.message.splitlines():
                self._print(f"     {line}", fg="red", dim=True)
        for assertion in execution.assertions:
            self._print_assertion(assertion.name, assertion.passed, assertion.skipped)

    def _print_request_line(self, execution: Execution) -> None:
        request, response = execution.request, execution.response
        if request is None:
            return
        if response is None:
            errored = any(error.kind == "request" for error in execution.errors)
            suffix = " [errored]" if errored else ""
            self._print(f"  {request.method} {request.url}{suffix}", dim=True)
            return
        detail = ", ".join(
            (
                f"{response.code} {response.status}".strip(),
                format_bytes(newman_response_size(response)),
                format_ms(response.response_time_ms),
            )
        )
        self._print(f"  {request.method} {request.url} [{detail}]", dim=True)

    def _print_assertion(self, name: str, passed: bool, skipped: bool) -> None:
        if skipped:
            self._print(f"  -  {name} (skipped)", fg="cyan")
        elif passed:
            self._print(f"  {self.symbols.ok}  {name}", fg="green")
        else:
            self._failure_count += 1
            self._print(f"  {self._failure_count}. {name}", fg="red", bold=True)

    def _print_console(self, level: str, text: str) -> None:
        s = self.symbols
        self._print(f"  {s.top_left}", dim=True)
        for line in text.splitlines() or [""]:
            prefix = f"{level}: " if level not in ("log", "info") else ""
            self._print(f"  {s.vertical} {prefix}{line}", dim=True)
        self._print(f"  {s.bottom_left}", dim=True)

    def _print_exchange(self, execution: Execution) -> None:
        """Headers and bodies of the request and the response, in one box."""
        sections: list[tuple[str, list[str]]] = []
        if execution.request is not None:
            request = execution.request
            headers = mask_headers(request.headers, ())
            sections.append(("request headers", [f"{k}: {v}" for k, v in headers]))
            if request.body:
                sections.append(("request body", request.body.splitlines()))
        if execution.response is not None:
            response = execution.response
            headers = mask_headers(response.headers, ())
            sections.append(("response headers", [f"{k}: {v}" for k, v in headers]))
            body = response.body.splitlines()
            if response.body_truncated:
                body.append("(body truncated)")
            sections.append(("response body", body))
        s = self.symbols
        for n, (title, lines) in enumerate(sections):
            self._print(f"  {s.top_left if n == 0 else s.mid_left} {title}", dim=True)
            for line in lines:
                self._print(f"  {s.vertical} {line}", dim=True)
        if sections:
            self._print(f"  {s.bottom_left}", dim=True)

    def run_finished(self, run: Run) -> None:
        self._refresh_secrets(run)
        failures = located_failures(run)
        # Errors outside any request had no request to be printed under.
        for failure in failures:
            if failure.execution is None:
                self._print()
                self._print(f"  {failure.name} in {failure.at}: {failure.message}", fg="red")
        if self.summary:
            self._print()
            for line in summary_table(run, self.symbols):
                self._print(line)
        if run.bailed:
            self._print()
            self._print("  the run stopped early (--bail)", fg="yellow")
        if failures and self.failures:
            self._print()
            heading, *rows = failure_table(failures)
            self._print(heading, bold=True)
            for line in rows:
                self._print(line, fg="red")
        self.stream.flush()

"""CSV iteration data read as newman reads it, in time linear in the input."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from pmrunner.errors import DataFileError
from runtime.csv_data import parse_csv_rows
from runtime.loading import load_iteration_data
from tests.unit.loading_helpers import write

# Each case's expected rows were produced by newman's own parser (csv-parse 4.16.3 with
# newman's options and cast); "error" marks input newman refuses too.
CASES = json.loads((Path(__file__).parent / "csv_newman_cases.json").read_text())


def _numbers_as_js(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """JSON has one number type: 1.0 and 1 are the same value for newman."""
    return [
        {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in row.items()}
        for row in rows
    ]


@pytest.mark.parametrize("case", CASES, ids=lambda case: repr(case["csv"])[:40])
def test_rows_are_newmans_rows(case: dict[str, Any]) -> None:
    if case.get("error"):
        with pytest.raises(DataFileError, match=r"^data.csv: line \d+: "):
            parse_csv_rows(case["csv"], "data.csv")
    else:
        assert _numbers_as_js(parse_csv_rows(case["csv"], "data.csv")) == case["rows"]


def test_a_bom_and_rows_shorter_than_the_header(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "\ufeffa,b,c\n1,2\n3\n".encode())
    assert load_iteration_data(path) == [{"a": 1, "b": 2}, {"a": 3}]


def test_a_quote_inside_an_unquoted_field_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", 'a,b,c\n"123", foo "bar" baz,x\n')
    assert load_iteration_data(path) == [{"a": "123", "b": 'foo "bar" baz', "c": "x"}]


def test_an_unclosed_quote_fails_at_once(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", 'a\n"' + "x" * 40)
    started = time.perf_counter()
    with pytest.raises(DataFileError, match="line 2: a quoted field is not closed"):
        load_iteration_data(path)
    assert time.perf_counter() - started < 1


def _seconds_to_parse(text: str) -> float:
    """The least CPU time of this thread over five parses: other processes' load does not count."""
    best = float("inf")
    for _ in range(5):
        started = time.thread_time()
        with contextlib.suppress(DataFileError):
            parse_csv_rows(text, "data.csv")
        best = min(best, time.thread_time() - started)
    return best


@pytest.mark.parametrize(
    "unit",
    [
        'a,"b ""q"" c", d "e" f ,12\n',  # ordinary rows
        '"' + "x\\" * 20,  # an unclosed quote (the pattern that used to backtrack)
        ' "x"  \t' * 10 + "\n",  # trimming around quotes
        "\n" * 20,  # empty records
    ],
)
def test_reading_time_is_linear_in_the_input(unit: str) -> None:
    header = "a,b,c,d\n"
    small = _seconds_to_parse(header + unit * 2_000)
    large = _seconds_to_parse(header + unit * 20_000)
    assert large < small * 10 * 2.5  # ten times the input: about ten times the time


def test_unquoted_numbers_are_cast_as_newman_casts_them() -> None:
    rows = parse_csv_rows(
        "n\n3\n1.50\n007\n1e3\n-0.25\n+7\n.5\n1e400\nInfinity\n1_0\n\u0661\n0x1A\n0b1\n"
        + "9" * 5000,
        "data.csv",
    )
    assert [row["n"] for row in rows] == [
        3, 1.5, 7, 1000, -0.25, 7, 0.5, "1e400", "Infinity", "1_0", "\u0661", "0x1A", "0b1",
        "9" * 5000,
    ]  # fmt: skip

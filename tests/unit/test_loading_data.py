"""Reading JSON files in any encoding, and iteration data in JSON or CSV."""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

import pytest

from pmrunner.errors import CollectionFormatError, DataFileError
from runtime.loading import load_iteration_data, read_json, row_for_iteration
from tests.unit.loading_helpers import write, write_json

DOCUMENT = {"name": "Zoë", "values": [1, 2.5, True, None]}


# --- read_json -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoded",
    [
        json.dumps(DOCUMENT).encode("utf-8"),
        codecs.BOM_UTF8 + json.dumps(DOCUMENT).encode("utf-8"),
        codecs.BOM_UTF16_LE + json.dumps(DOCUMENT).encode("utf-16-le"),
        codecs.BOM_UTF16_BE + json.dumps(DOCUMENT).encode("utf-16-be"),
        json.dumps(DOCUMENT).encode("utf-16-le"),
        json.dumps(DOCUMENT).encode("utf-16-be"),
        json.dumps(DOCUMENT, ensure_ascii=False).encode("utf-16-le"),
    ],
    ids=["utf8", "utf8-bom", "utf16le-bom", "utf16be-bom", "utf16le", "utf16be", "utf16le-raw"],
)
def test_read_json_accepts_utf8_and_utf16(tmp_path: Path, encoded: bytes) -> None:
    assert read_json(write(tmp_path / "doc.json", encoded)) == DOCUMENT


def test_read_json_reports_malformed_json_with_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.json", '{\n  "a": 1,\n  "b": \n}\n')
    with pytest.raises(DataFileError) as caught:
        read_json(path)
    message = str(caught.value)
    assert str(path) in message
    assert "line 4, column 1" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", "empty"), (b"  \n\t ", "empty"), (b'{"a": "\xff\xfe\xfd"}', "UTF-8")],
)
def test_read_json_rejects_empty_and_undecodable_files(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = write(tmp_path / "bad.json", content)
    with pytest.raises(DataFileError, match=expected) as caught:
        read_json(path)
    assert str(path) in str(caught.value)


def test_read_json_rejects_missing_files_and_directories(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="no such file") as caught:
        read_json(tmp_path / "absent.json")
    assert "absent.json" in str(caught.value)
    with pytest.raises(DataFileError, match="is a directory"):
        read_json(tmp_path)


def test_read_json_raises_the_error_class_asked_for(tmp_path: Path) -> None:
    with pytest.raises(CollectionFormatError):
        read_json(tmp_path / "absent.json", error=CollectionFormatError)


# --- iteration data ------------------------------------------------------------------------


def test_json_iteration_data_is_an_array_of_objects(tmp_path: Path) -> None:
    rows = [{"user": "a", "n": 1}, {"user": "b", "n": 2.5}]
    assert load_iteration_data(write_json(tmp_path / "data.json", rows)) == rows


@pytest.mark.parametrize(
    ("content", "expected"),
    [({"user": "a"}, "must be an array of objects"), ([{"a": 1}, 2], r"row \[1\]")],
)
def test_json_iteration_data_errors(tmp_path: Path, content: Any, expected: str) -> None:
    path = write_json(tmp_path / "data.json", content)
    with pytest.raises(DataFileError, match=expected) as caught:
        load_iteration_data(path)
    assert str(path) in str(caught.value)


def test_csv_iteration_data_casts_unquoted_numbers_like_newman(tmp_path: Path) -> None:
    content = (
        "name,count,price,code,zip,quoted,empty,sci,hex,big,neg\n"
        'alice,3,1.5,007,"01234","42",,1e3,0x1A,123456789012345678901,-5\n'
        'bob , 1.0 ,.5,abc,  "x" ,"",  ,2.50,-0,+7,-0.25\n'
    )
    rows = load_iteration_data(write(tmp_path / "data.csv", content))
    assert rows == [
        {
            "name": "alice",
            "count": 3,
            "price": 1.5,
            "code": 7,
            "zip": "01234",
            "quoted": "42",
            "empty": "",
            "sci": 1000,
            "hex": "0x1A",
            "big": 123456789012345678901,
            "neg": -5,
        },
        {
            "name": "bob",
            "count": 1,
            "price": 0.5,
            "code": "abc",
            "zip": "x",
            "quoted": "",
            "empty": "",
            "sci": 2.5,
            "hex": 0,
            "big": 7,
            "neg": -0.25,
        },
    ]
    assert type(rows[0]["count"]) is int and type(rows[0]["price"]) is float


def test_csv_quoted_fields_hold_commas_newlines_and_escaped_quotes(tmp_path: Path) -> None:
    content = (
        'id,text\r\n1,"a, b"\r\n2,"line one\r\nline two"\r\n'
        '3,"say ""hi"" and ""bye"""\r\n4,"back\\\\slash \\n kept"\r\n5,C:\\path\r\n'
    )
    rows = load_iteration_data(write(tmp_path / "data.csv", content))
    assert [row["text"] for row in rows] == [
        "a, b",
        "line one\r\nline two",
        'say "hi" and "bye"',
        "back\\\\slash \\n kept",  # a backslash is an ordinary character, as in newman
        "C:\\path",
    ]


def test_csv_bom_is_skipped_and_blank_lines_are_rows_as_in_newman(tmp_path: Path) -> None:
    content = codecs.BOM_UTF8 + b"user,pass\nu1,p1\n\nu2,p2\n"
    rows = load_iteration_data(write(tmp_path / "data.csv", content))
    assert rows == [{"user": "u1", "pass": "p1"}, {"user": ""}, {"user": "u2", "pass": "p2"}]


def test_csv_in_utf16_and_latin1_is_decoded(tmp_path: Path) -> None:
    utf16 = codecs.BOM_UTF16_LE + "name\nZoë\n".encode("utf-16-le")
    assert load_iteration_data(write(tmp_path / "u16.csv", utf16)) == [{"name": "Zoë"}]
    latin1 = "name\nZoë\n".encode("latin-1")
    assert load_iteration_data(write(tmp_path / "l1.csv", latin1)) == [{"name": "Zoë"}]


def test_csv_with_only_a_header_or_nothing_has_no_rows(tmp_path: Path) -> None:
    assert load_iteration_data(write(tmp_path / "h.csv", "a,b\n")) == []
    assert load_iteration_data(write(tmp_path / "e.csv", "")) == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('a,b\n1,"open\n2,3\n', "line 2: a quoted field is not closed"),
        ('a,b\n"x"y,2\n', "line 2: unexpected characters after a closing quote"),
    ],
)
def test_csv_errors_name_the_file_and_line(tmp_path: Path, content: str, expected: str) -> None:
    path = write(tmp_path / "data.csv", content)
    with pytest.raises(DataFileError, match=expected) as caught:
        load_iteration_data(path)
    assert str(caught.value).startswith(str(path))


def test_the_format_is_sniffed_when_the_extension_says_nothing(tmp_path: Path) -> None:
    assert load_iteration_data(write(tmp_path / "rows.txt", '[{"a": 1}]')) == [{"a": 1}]
    assert load_iteration_data(write(tmp_path / "rows.dat", "a\n1\n")) == [{"a": 1}]


def test_row_for_iteration_reuses_the_last_row() -> None:
    rows = [{"n": 1}, {"n": 2}]
    assert [row_for_iteration(rows, i) for i in range(4)] == [
        {"n": 1},
        {"n": 2},
        {"n": 2},
        {"n": 2},
    ]
    assert row_for_iteration([], 3) == {}
    row_for_iteration(rows, 0)["n"] = 99
    assert rows[0] == {"n": 1}

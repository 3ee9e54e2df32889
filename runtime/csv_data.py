"""Iteration data in CSV, read as newman reads it.

newman parses CSV with the npm ``csv-parse`` package (4.x) and the options
``columns: true, escape: '"', trim: true, relax: true, relax_column_count:
true, bom: true`` and a cast of unquoted numbers. This module follows that
parser's state machine, so the same file gives the same rows:

* the first record names the columns; a record with fewer fields than the
  header gives only the columns it has, extra fields are dropped;
* ``""`` inside quotes is a quote; a backslash is an ordinary character;
* a quote inside an unquoted field is kept as written (``foo "bar" baz``);
* spaces and tabs around fields are trimmed (unquoted fields also lose
  trailing Unicode white space, as JavaScript's ``trimRight``);
* the line break is the first one met outside quotes (``\\n``, ``\\r\\n`` or
  ``\\r``); an empty line is a record of one empty field; the last line
  break ends the file without adding a record;
* after a closing quote only white space, a comma or the line break may
  follow.

Casting differs from newman in three places, where newman's result is an
accident of JavaScript: hexadecimal, octal and binary-looking cells
(``0x1A``) stay text (newman reads 0), integers keep all their digits (up
to 4,300 of them, Python's limit for reading an integer; longer ones stay
text) and header names are never cast (newman refuses a header cell ``1``).

The reader is linear in its input: ordinary characters are taken in runs,
and each special character is looked at once.
"""

from __future__ import annotations

import math
import re
import sys
from typing import Any

from pmrunner.errors import DataFileError

__all__ = ["parse_csv_rows"]

_TRIMMABLE = " \t\r\n\x0c"  # csv-parse's trimmable bytes
# JavaScript's white space and line terminators (String.prototype.trim and Number()).
_JS_SPACE = (
    "\t\n\x0b\x0c\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_PLAIN_RUN = re.compile(r'[^",\r\n]+')
_INTEGER = re.compile(r"[+-]?[1-9][0-9]*")  # newman's isInt
_DECIMAL_PREFIX = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_RADIX_LITERAL = re.compile(r"0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+")
_MAX_INT_DIGITS = getattr(sys, "get_int_max_str_digits", lambda: 4300)() or 4300

Field = tuple[str, bool]  # (text, was quoted)


class _Parser:
    """csv-parse's state, for one text."""

    def __init__(self, text: str, label: str) -> None:
        self.text = text
        self.label = label
        self.line_break: str | None = None  # discovered at the first break outside quotes
        self.quoting = False
        self.quote_start = 0  # where the open quote is, for the error
        self.was_quoting = False
        self.field: list[str] = []
        self.field_length = 0
        self.record: list[Field] = []
        self.records: list[list[Field]] = []

    def error(self, position: int, what: str) -> DataFileError:
        line = self.text.count("\n", 0, position) + 1
        return DataFileError(f"{self.label}: line {line}: {what}")

    def append(self, text: str) -> None:
        self.field.append(text)
        self.field_length += len(text)

    def end_field(self) -> None:
        text = "".join(self.field)
        if not self.was_quoting:
            text = text.rstrip(_JS_SPACE)
        self.record.append((text, self.was_quoting))
        self.field, self.field_length, self.was_quoting = [], 0, False

    def end_record(self) -> None:
        self.end_field()
        self.records.append(self.record)
        self.record = []

    def break_at(self, position: int) -> int:
        """The length of the line break at ``position`` (0: none), discovering it first."""
        text = self.text
        if self.line_break is None:
            if text.startswith("\r\n", position):
                self.line_break = "\r\n"
            elif position < len(text) and text[position] in "\r\n":
                self.line_break = text[position]
            else:
                return 0
        return len(self.line_break) if text.startswith(self.line_break, position) else 0

    def take(self, position: int, char: str) -> None:
        """An ordinary character: kept, trimmed away, or refused after a closing quote."""
        keep_left = self.quoting or self.field_length != 0 or char not in _TRIMMABLE
        if keep_left and not self.was_quoting:
            self.append(char)
        elif char not in _TRIMMABLE:
            raise self.error(position, "unexpected characters after a closing quote")

    def take_run(self, run: str, position: int) -> None:
        """A run of characters none of which is a quote, a comma or a line-break character."""
        if self.quoting and not self.was_quoting:
            self.append(run)
        elif self.was_quoting:
            for offset, char in enumerate(run):
                self.take(position + offset, char)
        else:
            self.append(run if self.field_length else run.lstrip(" \t\x0c"))

    def parse(self) -> list[list[Field]]:
        text, size = self.text, len(self.text)
        position = 0
        while position < size:
            run = _PLAIN_RUN.match(text, position)
            if run is not None:
                self.take_run(run.group(), position)
                position = run.end()
                continue
            position = self.special(position)
        if self.quoting:
            raise self.error(self.quote_start, "a quoted field is not closed")
        if self.was_quoting or self.record or self.field_length:
            self.end_record()
        return self.records

    def special(self, position: int) -> int:
        """Handle the quote, comma or line-break character at ``position``; the next position."""
        text, char = self.text, self.text[position]
        if char == '"':
            if self.quoting:
                following = text[position + 1 : position + 2]
                if following == '"':  # an escaped quote
                    self.take(position + 1, '"')
                    return position + 2
                if not following or following == "," or following in _TRIMMABLE:
                    self.quoting, self.was_quoting = False, True
                    return position + 1
                raise self.error(position, "unexpected characters after a closing quote")
            if self.field_length == 0:
                self.quoting, self.quote_start = True, position
                return position + 1
            # a quote inside an unquoted field is an ordinary character (relax)
        if not self.quoting:
            length = self.break_at(position)
            if length:
                self.end_record()
                return position + length
            if char == ",":
                self.end_field()
                return position + 1
        self.take(position, char)
        return position + 1


def parse_csv_rows(text: str, label: str) -> list[dict[str, Any]]:
    """Rows of CSV iteration data, as newman reads them (see the module documentation).

    Args:
        text: the file's text; a leading BOM is skipped.
        label: how errors name the file.

    Raises:
        DataFileError: naming the file and line: a quote that is not closed,
            or characters after a closing quote.
    """
    records = _Parser(text.removeprefix("\ufeff"), label).parse()
    if not records:
        return []
    columns = [name for name, _ in records[0]]
    rows = []
    for fields in records[1:]:
        row: dict[str, Any] = {}
        for name, field in zip(columns, fields, strict=False):
            row[name] = csv_value(*field)
        rows.append(row)
    return rows


def csv_value(text: str, quoted: bool) -> Any:
    """newman's cast: unquoted integers and decimals become numbers; see the module doc."""
    if quoted:
        return text
    if _INTEGER.fullmatch(text):
        digits = len(text.lstrip("+-"))
        return int(text) if digits <= _MAX_INT_DIGITS else text
    number = _js_float(text)
    if number is None:
        return text
    return int(number) if number.is_integer() and abs(number) <= 2**53 else number


def _js_float(text: str) -> float | None:
    """``parseFloat(text)`` when newman's ``isFloat`` holds for ``text``, else None.

    isFloat is ``Number(text) - parseFloat(text) + 1 >= 0``: both must be
    finite numbers. ``Number`` reads the whole text (trimmed), ``parseFloat``
    its longest numeric prefix.
    """
    stripped = text.strip(_JS_SPACE)
    if not stripped or _RADIX_LITERAL.fullmatch(stripped):
        return None  # Number("") is 0 but parseFloat("") is NaN; radix literals stay text
    whole = _DECIMAL_PREFIX.fullmatch(stripped)
    prefix = _DECIMAL_PREFIX.match(text.lstrip(_JS_SPACE))
    if whole is None or prefix is None:
        return None
    number, parsed = (
        float(whole.group().replace("Infinity", "inf")),
        float(prefix.group().replace("Infinity", "inf")),
    )
    if not (math.isfinite(number) and math.isfinite(parsed)) or number - parsed + 1 < 0:
        return None
    return parsed

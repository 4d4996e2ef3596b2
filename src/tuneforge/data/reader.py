"""Read a JSONL dataset line by line, turning every unreadable line into a Problem.

Nothing here raises for bad input: an unreadable file, a line that is not UTF-8, invalid JSON or
a line that is not a JSON object each become a :class:`Problem` naming the line, and reading
goes on with the next line.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from tuneforge.data.records import Problem

Source = Path | str | os.PathLike[str] | bytes | bytearray | memoryview

UTF8_BOM = b"\xef\xbb\xbf"
JSON_WHITESPACE = " \t\r\n"  # only these make a line blank; str.strip() would also take \x1c


def json_type_name(value: object) -> str:
    """The JSON name of a parsed value's type, for messages ("found a number")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


# json.loads(text, parse_constant=...) builds a new decoder for every call; one serves them all.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _raw_lines(source: Source) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        start = 0
        # One line at a time, not data.split(): a split list is a second copy of the file.
        while (end := data.find(b"\n", start)) >= 0:
            yield data[start:end]
            start = end + 1
        yield data[start:]
        return
    with open(source, "rb") as file:
        yield from file


def _parse_line(number: int, raw: bytes) -> tuple[int, dict] | Problem | None:
    if number == 1 and raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return Problem(
            number,
            "",
            f"the line is not valid UTF-8 (byte 0x{raw[err.start]:02x} at byte {err.start + 1});"
            " save the file as UTF-8",
        )
    text = text.strip(JSON_WHITESPACE)
    if not text:
        return None
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as err:
        hint = ""
        if number == 1 and text in ("[", "{"):
            hint = "; the file looks like pretty-printed JSON: JSONL needs one object per line"
        return Problem(number, "", f"invalid JSON: {err.msg} at column {err.colno}{hint}")
    except (ValueError, RecursionError) as err:
        # ValueError: NaN/Infinity or an integer too long to convert; RecursionError: nesting
        # deeper than the parser's stack.
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        return Problem(number, "", f"invalid JSON: {reason}")
    if not isinstance(value, dict):
        found = json_type_name(value)
        return Problem(
            number, "", f"each line must be one JSON object ({{...}}); found {found} instead"
        )
    return number, value


def read_jsonl(source: Source) -> Iterator[tuple[int, dict] | Problem]:
    """Yield ``(line_number, object)`` for each JSON object line, or a Problem for a bad line.

    ``source`` is a path or the file's bytes. Line numbers are 1-based; blank lines are skipped
    silently; a UTF-8 byte order mark at the start is allowed. A file that cannot be opened or
    read yields one Problem with line 0.
    """
    number, first = 0, True
    try:
        for number, raw in enumerate(_raw_lines(source), start=1):
            item = _parse_line(number, raw)
            if item is None:
                continue
            if first and isinstance(item, Problem) and (problem := csv_problem(source)):
                yield problem  # one message for the file, not one per row
                return
            first = False
            yield item
    except OSError as err:
        where = f" after line {number}" if number else ""
        reason = err.strerror or str(err)
        yield Problem(0, "", f"cannot read the file{where}: {reason}")


CSV_HEAD_LINES = 5  # how many lines decide that a file is CSV


def csv_problem(source: Source) -> Problem | None:
    """A Problem saying how to convert the file when its first lines are CSV (or TSV): rows
    of two or more fields, as many on each line, that are not JSON."""
    head = [
        line
        for raw in islice(_raw_lines(source), CSV_HEAD_LINES)
        if (line := raw.decode("utf-8", "replace").removeprefix("\ufeff").strip())
    ]
    if len(head) < 2 or head[0][0] in "{[":
        return None
    for delimiter in (",", "\t", ";"):
        try:
            rows = list(csv.reader(head, delimiter=delimiter))
        except csv.Error:  # a stray carriage return, say: not a CSV file worth naming
            return None
        if len(rows[0]) >= 2 and all(len(row) == len(rows[0]) for row in rows):
            return Problem(0, "", _csv_message(rows[0]))
    return None


def _csv_message(header: list[str]) -> str:
    prompt, answer = (name.strip() for name in header[:2])
    convert = (
        'python -c \'import csv, json, sys; [print(json.dumps({"messages": ['
        f'{{"role": "user", "content": r["{prompt}"]}}, '
        f'{{"role": "assistant", "content": r["{answer}"]}}]}})) '
        "for r in csv.DictReader(sys.stdin)]' < FILE.csv > FILE.jsonl"
    )
    return (
        f"this looks like CSV (columns {', '.join(header)}), not JSONL: each line must be one "
        f"JSON object. Convert it, taking {prompt!r} as the prompt and {answer!r} as the "
        f"answer, with: {convert}"
    )

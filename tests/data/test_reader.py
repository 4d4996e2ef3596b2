from __future__ import annotations

import json

import pytest

from tuneforge.data.reader import json_type_name, read_jsonl
from tuneforge.data.records import Problem


def objects(items) -> list[tuple[int, dict]]:
    return [item for item in items if not isinstance(item, Problem)]


def problems(items) -> list[Problem]:
    return [item for item in items if isinstance(item, Problem)]


def test_reads_objects_with_their_line_numbers_skipping_blank_lines():
    data = b'{"a": 1}\n\n   \n{"b": 2}\r\n\t\n{"c": 3}'
    assert list(read_jsonl(data)) == [(1, {"a": 1}), (4, {"b": 2}), (6, {"c": 3})]


def test_utf8_text_and_a_byte_order_mark_at_the_start_are_read():
    data = '\ufeff{"text": "héllo ✓ 日本"}\n'.encode()
    assert list(read_jsonl(data)) == [(1, {"text": "héllo ✓ 日本"})]


def test_a_byte_order_mark_on_a_later_line_is_invalid_json():
    data = b'{"a": 1}\n\xef\xbb\xbf{"b": 2}\n'
    [problem] = problems(read_jsonl(data))
    assert problem.line == 2
    assert "invalid JSON" in problem.message


def test_invalid_json_names_the_line_and_column_and_reading_goes_on():
    data = b'{"a": 1}\n{"a": 1,, }\n{"b": 2}\n'
    items = list(read_jsonl(data))
    assert objects(items) == [(1, {"a": 1}), (3, {"b": 2})]
    [problem] = problems(items)
    assert (problem.line, problem.field) == (2, "")
    assert problem.message.startswith("invalid JSON:")
    assert "column 9" in problem.message


def test_pretty_printed_json_gets_a_hint_about_jsonl():
    data = json.dumps([{"prompt": "a", "completion": "b"}], indent=2).encode()
    first = problems(read_jsonl(data))[0]
    assert first.line == 1
    assert "JSONL needs one object per line" in first.message


@pytest.mark.parametrize(
    ("line", "found"),
    [
        (b"[1, 2]", "found an array"),
        (b'"text"', "found a string"),
        (b"42", "found a number"),
        (b"null", "found null"),
        (b"true", "found a boolean"),
    ],
)
def test_a_line_that_is_not_an_object_is_a_problem(line, found):
    [problem] = problems(read_jsonl(b'{"ok": 1}\n' + line))
    assert (problem.line, problem.field) == (2, "")
    assert "must be one JSON object" in problem.message
    assert found in problem.message


def test_a_line_that_is_not_utf8_is_a_problem_and_the_others_are_read():
    data = b'{"a": 1}\n{"a": "caf\xe9"}\n{"b": 2}\n'
    items = list(read_jsonl(data))
    assert objects(items) == [(1, {"a": 1}), (3, {"b": 2})]
    [problem] = problems(items)
    assert problem.line == 2
    assert "not valid UTF-8" in problem.message
    assert "0xe9" in problem.message


@pytest.mark.parametrize(
    ("line", "phrase"),
    [
        (b'{"score": NaN}', "NaN is not valid JSON"),
        (b'{"score": -Infinity}', "-Infinity is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"n": ' + b"9" * 10_000 + b"}", "invalid JSON"),
    ],
)
def test_json_that_python_cannot_or_should_not_take_is_a_problem(line, phrase):
    [problem] = list(read_jsonl(line))
    assert problem.line == 1
    assert phrase in problem.message


def test_reads_a_path(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"b": 2}\n')
    assert list(read_jsonl(path)) == [(1, {"a": 1}), (3, {"b": 2})]
    assert list(read_jsonl(str(path))) == [(1, {"a": 1}), (3, {"b": 2})]


@pytest.mark.parametrize("name", ["missing.jsonl", "."])
def test_an_unreadable_path_is_one_file_level_problem(tmp_path, name):
    [problem] = list(read_jsonl(tmp_path / name))
    assert problem.line == 0
    assert "cannot read the file" in problem.message


def test_empty_input_yields_nothing():
    assert list(read_jsonl(b"")) == []
    assert list(read_jsonl(b"\n\n  \n")) == []


@pytest.mark.parametrize(
    ("value", "name"),
    [(None, "null"), (True, "a boolean"), (1.5, "a number"), ("", "a string"), ([], "an array"),
     ({}, "an object")],
)  # fmt: skip
def test_json_type_name(value, name):
    assert json_type_name(value) == name


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_a_csv_file_is_one_problem_that_says_how_to_convert_it(delimiter):
    rows = ["input,output", *[f"review {i} ->,positive" for i in range(50)]]
    data = "\n".join(row.replace(",", delimiter) for row in rows).encode()

    [problem] = list(read_jsonl(data))

    assert problem.line == 0 and problem.message.startswith("this looks like CSV")
    assert "columns input, output" in problem.message and "FILE.jsonl" in problem.message


def test_the_conversion_the_csv_message_gives_makes_a_valid_chat_file(tmp_path):
    import re
    import subprocess
    import sys

    from tuneforge.data.validate import validate_dataset

    source = tmp_path / "FILE.csv"
    rows = [f'"review {i}, {"superb" if i % 2 else "dull"} ->",{i % 2}' for i in range(12)]
    source.write_text("input,output\n" + "\n".join(rows) + "\n")
    [problem] = list(read_jsonl(source))
    command = re.search(r"with: (python -c .*)$", problem.message)[1]

    subprocess.run(command.replace("python", sys.executable, 1), shell=True, cwd=tmp_path,
                   check=True)  # fmt: skip

    report = validate_dataset(tmp_path / "FILE.jsonl", task="supervised")
    assert report.ok and report.example_count == 12
    first = report.examples[0]
    assert (first.turns[0].text, first.turns[1].text) == ("review 0, dull ->", "0")


def test_text_with_commas_that_is_not_jsonl_is_not_called_csv():
    data = b"{not json\nhello, world\none, two, three\n"
    assert not any("CSV" in p.message for p in problems(read_jsonl(data)))
    jsonl_with_a_bad_first_line = b'a,b\n{"a": 1}\n{"b": 2}\n'
    assert len(objects(read_jsonl(jsonl_with_a_bad_first_line))) == 2


def test_binary_lines_with_stray_carriage_returns_are_bad_lines_not_a_crash():
    """Found by the fuzz test: csv.reader raises on a bare CR inside a line."""
    found = problems(read_jsonl(b"\x00\n\x00\r\x00"))
    assert [p.line for p in found] == [1, 2]
    assert not any("CSV" in p.message for p in found)

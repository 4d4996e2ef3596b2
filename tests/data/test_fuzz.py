"""Whatever the bytes, validation reports instead of raising, and every line is accounted for."""

from __future__ import annotations

import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from tuneforge.data.formats import IDENTIFYING_KEYS
from tuneforge.data.records import ValidationReport
from tuneforge.data.report import render, to_json
from tuneforge.data.validate import DatasetValidationError, load_examples, validate_dataset

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

REAL_KEYS = sorted(
    IDENTIFYING_KEYS
    | {"role", "parts", "text", "content", "type", "weight", "score", "completion", "name"}
    | {"inlineData", "fileData", "functionCall", "tool_calls", "image_url", "messages"}
)
ROLES = ["user", "model", "assistant", "system", "developer", "tool", "function", "", "User"]

tasks = st.sampled_from(["supervised", "preference", "distillation"])
keys = st.sampled_from(REAL_KEYS) | st.text(max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(ROLES)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)
texts = st.text(max_size=12) | json_values

# Lines shaped like the real formats, with any field possibly wrong.
any_role = st.sampled_from(ROLES) | json_values
openai_part = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url"]) | json_values}, optional={"text": texts}
)
message = st.fixed_dictionaries(
    {"role": any_role},
    optional={
        "content": texts | st.lists(openai_part, max_size=3),
        "weight": st.sampled_from([0, 1, 2, True]) | json_values,
        "tool_calls": json_values,
    },
)
messages = st.lists(message | json_values, max_size=5)
gemini_part = st.fixed_dictionaries({}, optional={"text": texts, "inlineData": json_values})
gemini_parts = st.lists(gemini_part, max_size=3)
turn = st.fixed_dictionaries({}, optional={"role": any_role, "parts": gemini_parts | json_values})
completion = st.fixed_dictionaries(
    {}, optional={"score": st.integers(-2, 2) | json_values, "completion": turn | json_values}
)
vertex_lines = st.fixed_dictionaries(
    {"contents": st.lists(turn | json_values, max_size=5) | json_values},
    optional={
        "systemInstruction": st.fixed_dictionaries({"parts": gemini_parts}) | json_values,
        "completions": st.lists(completion, max_size=3) | json_values,
    },
)
openai_preference_lines = st.fixed_dictionaries(
    {},
    optional={
        "input": st.fixed_dictionaries({"messages": messages}) | json_values,
        "preferred_output": messages | json_values,
        "non_preferred_output": messages | json_values,
    },
)
prompt_lines = st.fixed_dictionaries(
    {},
    optional={
        "prompt": texts | messages,
        "chosen": texts | messages,
        "rejected": texts | messages,
        "completion": texts,
        "text_input": texts,
        "output": texts,
    },
)
lines = st.one_of(
    st.dictionaries(keys, json_values, max_size=6),
    json_values,
    st.fixed_dictionaries({"messages": messages | json_values}),
    vertex_lines,
    openai_preference_lines,
    prompt_lines,
)


@st.composite
def jsonl_files(draw) -> bytes:
    encoded = []
    for line in draw(st.lists(lines, max_size=12)):
        if draw(st.booleans()):
            encoded.append(json.dumps(line).encode())
        else:  # raw UTF-8, where a lone surrogate becomes bytes that are not UTF-8
            encoded.append(json.dumps(line, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return b"\n".join(encoded)


def check_report(report: ValidationReport, data: bytes) -> None:
    line_count = len(data.split(b"\n"))
    assert isinstance(report, ValidationReport)
    assert len(report.examples) == len(report.lines)
    assert report.ok == (report.error_count == 0)
    example_lines = set(report.lines)
    for problem in report.problems:
        assert 0 <= problem.line <= line_count
        assert problem.message
        problem.message.encode("utf-8")  # printable: no lone surrogates leak into messages
        problem.field.encode("utf-8")
        if problem.severity == "error" and problem.line in example_lines:
            assert "method needs" in problem.message  # the one error that keeps its example
    error_lines = {p.line for p in report.problems if p.severity == "error"}
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        if raw.strip(b" \t\r\n") and number not in example_lines:
            assert number in error_lines, f"line {number} was dropped without an error"
    json.dumps(to_json(report))
    Console(file=io.StringIO(), width=120).print(render(report))


@FUZZ
@given(data=st.binary(max_size=2000), task=tasks)
def test_random_bytes_never_raise(data, task):
    check_report(validate_dataset(data, task=task), data)


@FUZZ
@given(data=jsonl_files(), task=tasks)
def test_random_json_lines_never_raise_and_every_line_is_accounted_for(data, task):
    check_report(validate_dataset(data, task=task), data)


@settings(FUZZ, max_examples=100)
@given(data=jsonl_files() | st.binary(max_size=500), task=tasks)
def test_load_examples_raises_only_dataset_validation_error(data, task):
    try:
        examples = load_examples(data, task=task, min_examples=0)
    except DatasetValidationError as err:
        assert not err.report.ok
        assert str(err).startswith("the dataset has")
    else:
        assert isinstance(examples, list)

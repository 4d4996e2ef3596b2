from __future__ import annotations

import json
import random
import time

import pytest

from tuneforge.data.records import MAX_REPORTED_PROBLEMS, DatasetFormat, Problem, ValidationReport
from tuneforge.data.validate import (
    DatasetValidationError,
    implied_task,
    load_examples,
    validate_any_task,
    validate_dataset,
)
from tuneforge.errors import InvalidArgument, TuneforgeError


def jsonl(objects) -> bytes:
    return b"".join(json.dumps(obj).encode() + b"\n" for obj in objects)


def chat(index: int) -> dict:
    return {
        "messages": [
            {"role": "system", "content": "Answer."},
            {"role": "user", "content": f"question {index}"},
            {"role": "assistant", "content": f"answer {index}"},
        ]
    }


def vertex(index: int) -> dict:
    return {
        "contents": [
            {"role": "user", "parts": [{"text": f"question {index}"}]},
            {"role": "model", "parts": [{"text": f"answer {index}"}]},
        ]
    }


def vertex_preference(index: int) -> dict:
    return {
        "contents": [{"role": "user", "parts": [{"text": f"question {index}"}]}],
        "completions": [
            {"score": 1, "completion": {"role": "model", "parts": [{"text": "good"}]}},
            {"score": 0, "completion": {"role": "model", "parts": [{"text": "bad"}]}},
        ],
    }


def prompt_chosen_rejected(index: int) -> dict:
    return {"prompt": f"q{index}", "chosen": "yes", "rejected": "no"}


def openai_preference(index: int) -> dict:
    return {
        "input": {"messages": [{"role": "user", "content": f"question {index}"}]},
        "preferred_output": [{"role": "assistant", "content": "good"}],
        "non_preferred_output": [{"role": "assistant", "content": "bad"}],
    }


MAKERS = {
    DatasetFormat.VERTEX_SFT: vertex,
    DatasetFormat.OPENAI_CHAT: chat,
    DatasetFormat.PROMPT_COMPLETION: lambda i: {"prompt": f"q{i}", "completion": f"a{i}"},
    DatasetFormat.OPENAI_PREFERENCE: openai_preference,
    DatasetFormat.VERTEX_PREFERENCE: vertex_preference,
    DatasetFormat.PROMPT_CHOSEN_REJECTED: prompt_chosen_rejected,
}


def dataset(make=chat, count: int = 100, replace: dict[int, object] | None = None) -> bytes:
    """``count`` good lines, with the 1-based lines in ``replace`` swapped for other content."""
    objects = [make(i) for i in range(count)]
    for line, obj in (replace or {}).items():
        objects[line - 1] = obj
    return b"".join(
        (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n" for obj in objects
    )


def problems_on(report: ValidationReport, line: int) -> list[Problem]:
    return [problem for problem in report.problems if problem.line == line]


def only_problem(report: ValidationReport, line: int) -> Problem:
    [problem] = problems_on(report, line)
    return problem


@pytest.mark.parametrize("fmt", list(DatasetFormat))
def test_a_valid_dataset_of_each_format(fmt):
    task = "preference" if fmt.is_preference else "supervised"
    report = validate_dataset(dataset(MAKERS[fmt]), task=task)
    assert report.ok, report.problems
    assert report.problems == []
    assert report.format == fmt
    assert len(report.examples) == 100
    assert report.lines == list(range(1, 101))


def test_problems_name_their_lines_and_valid_lines_are_kept():
    data = dataset(
        replace={
            3: b"{not json",
            5: b"[1]",
            8: {"messages": [{"role": "user", "content": 3}]},
            9: {"text": "hello"},
        }
    )
    report = validate_dataset(data)
    assert not report.ok
    assert [p.line for p in report.problems if p.severity == "error"] == [3, 5, 8, 9]
    assert len(report.examples) == 96
    assert 3 not in report.lines and 4 in report.lines


def test_unknown_format_names_the_keys_found_and_the_formats_there_are():
    report = validate_dataset(dataset(replace={4: {"question": "q", "answer": "a"}}))
    problem = only_problem(report, 4)
    assert problem.field == ""
    assert 'unknown format: found keys "question", "answer"' in problem.message
    for keys in ('"messages"', '"contents"', '"prompt" + "completion"', '"preferred_output"',
                 '"completions"', '"prompt" + "chosen" + "rejected"'):  # fmt: skip
        assert keys in problem.message


def test_unknown_format_points_at_a_key_with_the_wrong_case():
    report = validate_dataset(dataset(replace={2: {"Messages": []}}))
    assert '"Messages" should be "messages"' in only_problem(report, 2).message


def test_mixed_formats_name_the_files_format_its_share_of_lines_and_the_lines_format():
    report = validate_dataset(dataset(replace={1: b"oops", 6: vertex(6)}))
    problem = only_problem(report, 6)
    assert report.format == DatasetFormat.OPENAI_CHAT
    assert "this line is in Vertex/Gemini SFT format" in problem.message
    assert "the file is in OpenAI chat format (98 of its 100 lines are)" in problem.message


@pytest.mark.parametrize("odd_line", [1, 2, 50])
def test_the_format_of_most_lines_decides_so_only_the_odd_line_is_reported(odd_line):
    report = validate_dataset(dataset(replace={odd_line: vertex(odd_line)}))
    assert report.format == DatasetFormat.OPENAI_CHAT
    assert [p.line for p in report.problems] == [odd_line]
    assert len(report.examples) == 99


def test_a_file_in_the_wrong_format_for_its_task_is_named_once_at_its_first_line():
    report = validate_dataset(dataset(replace={1: b"oops"}), task="preference")
    [mismatch] = [p for p in report.problems if "a supervised format" in p.message]
    assert mismatch.line == 2 and report.format == DatasetFormat.OPENAI_CHAT


def test_a_line_that_lacks_keys_is_read_in_the_files_format():
    # {"contents"} alone would be Vertex SFT; in a Vertex preference file it lacks completions.
    prompt_only = {"contents": vertex_preference(5)["contents"]}
    data = dataset(vertex_preference, replace={5: prompt_only})
    problem = only_problem(validate_dataset(data, task="preference"), 5)
    assert problem.field == "completions"
    assert problem.message.startswith('missing "completions"')


def test_the_task_decides_how_a_first_line_that_lacks_keys_is_read():
    data = dataset(prompt_chosen_rejected, replace={1: {"prompt": "q"}})
    report = validate_dataset(data, task="preference")
    assert report.format == DatasetFormat.PROMPT_CHOSEN_REJECTED
    assert [p.field for p in problems_on(report, 1)] == ["chosen", "rejected"]


@pytest.mark.parametrize(
    ("fmt", "task", "phrases"),
    [
        (DatasetFormat.OPENAI_PREFERENCE, "supervised",
         ["OpenAI DPO preference format, a preference format", "the supervised method needs",
          "OpenAI chat", "use the preference method"]),
        (DatasetFormat.VERTEX_PREFERENCE, "distillation",
         ["Vertex preference format", "the distillation method needs", "Vertex/Gemini SFT"]),
        (DatasetFormat.OPENAI_CHAT, "preference",
         ["OpenAI chat format, a supervised format", "the preference method needs",
          "OpenAI DPO preference", "use the supervised or distillation method"]),
    ],
)  # fmt: skip
def test_a_dataset_for_the_wrong_task_says_which_formats_the_task_needs(fmt, task, phrases):
    report = validate_dataset(dataset(MAKERS[fmt]), task=task)
    [problem] = report.problems
    assert (problem.line, problem.field, problem.severity) == (1, "", "error")
    for phrase in phrases:
        assert phrase in problem.message


def test_distillation_prompts_may_end_with_a_user_turn_but_supervised_examples_may_not():
    prompts = dataset(lambda i: {"messages": [{"role": "user", "content": f"q{i}"}]})
    assert validate_dataset(prompts, task="distillation").ok
    report = validate_dataset(prompts, task="supervised")
    assert report.error_count == 100
    problem = only_problem(report, 1)
    assert problem.field == "messages[0]"
    assert 'must end with an "assistant" message' in problem.message


@pytest.mark.parametrize(("count", "severity"), [(1, "error"), (9, "error"), (10, "warning"),
                                                  (99, "warning")])  # fmt: skip
def test_too_few_examples(count, severity):
    report = validate_dataset(dataset(count=count))
    [problem] = report.problems
    assert (problem.line, problem.field, problem.severity) == (0, "", severity)
    assert f"the file has {count} line" in problem.message
    assert "the cloud services recommend 100-500" in problem.message
    if severity == "error":
        assert "at least 10 examples are needed" in problem.message


def test_the_example_thresholds_can_be_changed():
    report = validate_dataset(dataset(count=3), min_examples=1, recommended_examples=1)
    assert report.problems == []


@pytest.mark.parametrize("data", [b"", b"\n  \n\n"])
def test_an_empty_file_is_an_error(data):
    [problem] = validate_dataset(data).problems
    assert (problem.line, problem.severity) == (0, "error")
    assert "the file has no examples" in problem.message


def test_duplicates_are_a_warning_naming_both_lines():
    report = validate_dataset(dataset(replace={7: chat(2), 9: chat(2)}))
    assert report.ok
    assert [(p.line, p.severity) for p in report.problems] == [(7, "warning"), (9, "warning")]
    assert "lines 3 and 7 are the same example" in only_problem(report, 7).message
    assert "lines 3 and 9 are the same example" in only_problem(report, 9).message
    assert len(report.examples) == 100  # duplicates are kept: they are only a warning


def test_examples_longer_than_max_length_are_a_warning_with_their_indices(tiny_tokenizer):
    long = {"prompt": "word " * 200, "completion": "ok"}
    data = dataset(lambda i: {"prompt": f"q{i}", "completion": "a"}, replace={2: b"bad", 5: long})
    report = validate_dataset(data, tokenizer=tiny_tokenizer, max_length=64)
    problem = only_problem(report, 5)
    assert (problem.field, problem.severity) == ("", "warning")
    assert "more than the maximum length 64; it will be truncated" in problem.message
    assert report.truncated == [3]  # line 5 is the 4th example: line 2 is invalid
    assert report.lines[3] == 5


def test_without_max_length_nothing_is_tokenized(tiny_tokenizer):
    data = dataset(lambda i: {"prompt": "word " * 200 + str(i), "completion": "ok"})
    report = validate_dataset(data, tokenizer=tiny_tokenizer)
    assert report.ok and report.truncated == [] and report.problems == []


def test_a_tokenizer_that_fails_is_reported_not_raised():
    class BrokenTokenizer:
        def apply_chat_template(self, *args, **kwargs):
            raise ValueError("template error")

    report = validate_dataset(dataset(count=10), tokenizer=BrokenTokenizer(), max_length=10)
    assert report.error_count == 10
    assert "the model's tokenizer failed on this example: ValueError" in report.problems[0].message


def test_reads_a_path_and_reports_an_unreadable_one(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(dataset())
    assert validate_dataset(path).ok
    report = validate_dataset(tmp_path / "missing.jsonl")
    assert not report.ok
    assert report.problems[0].line == 0
    assert "cannot read the file" in report.problems[0].message


def test_problems_past_the_cap_are_counted_but_not_kept():
    report = validate_dataset(b"x\n" * (MAX_REPORTED_PROBLEMS + 50))
    assert report.error_count == MAX_REPORTED_PROBLEMS + 50
    assert len(report.problems) == MAX_REPORTED_PROBLEMS
    assert report.omitted_problems == 50


def test_load_examples_returns_the_examples_of_a_valid_dataset():
    examples = load_examples(dataset(count=12), task="supervised")
    assert len(examples) == 12
    assert examples[0].turns[0].text == "question 0"


def test_load_examples_raises_with_the_report_and_names_the_first_problems():
    data = dataset(replace={2: b"{", 4: b"[]", 6: {"x": 1}, 8: {"messages": []}, 10: chat(0)})
    with pytest.raises(DatasetValidationError) as caught:
        load_examples(data)
    err = caught.value
    assert isinstance(err, TuneforgeError)
    assert err.report.error_count == 4
    assert str(err).startswith("the dataset has 4 errors: line 2: invalid JSON")
    assert "line 4: each line must be one JSON object" in str(err)
    assert "line 6: unknown format" in str(err)
    assert str(err).endswith("(and 1 more)")
    assert "line 10" not in str(err)  # a warning (a duplicate) is not an error


def test_an_unknown_task_is_a_bad_argument():
    with pytest.raises(InvalidArgument):
        validate_dataset(dataset(), task="pretraining")  # type: ignore[arg-type]


BAD_LINES = [
    b"{oops",
    b"\xff\xfe",
    b'"a string"',
    b'{"nothing": "known"}',
    json.dumps(vertex(0)).encode(),  # a mixed format in an OpenAI chat file
    json.dumps({"messages": [{"role": "user", "content": 5}]}).encode(),
    json.dumps({"messages": [{"role": "robot", "content": "x"}]}).encode(),
    json.dumps({"messages": [{"role": "user", "content": "q"}]}).encode(),
    json.dumps({"messages": [{"role": "assistant", "content": "a"}]}).encode(),
    json.dumps({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}).encode(),
    json.dumps({"messages": "hello"}).encode(),
    json.dumps({"messages": [{"role": "user", "content": ""}]}).encode(),
]


def test_a_thousand_bad_lines_are_all_reported_quickly():
    rng = random.Random(0)
    lines = [json.dumps(chat(0)).encode()] + [rng.choice(BAD_LINES) for _ in range(1000)]
    data = b"\n".join(lines)
    start = time.perf_counter()
    report = validate_dataset(data)
    elapsed = time.perf_counter() - start
    reported = {problem.line for problem in report.problems}
    assert reported >= set(range(2, 1002))
    assert elapsed < 2, f"validating 1,000 bad lines took {elapsed:.2f} s"


def prompt_only_chat(index: int) -> dict:
    return {"messages": chat(index)["messages"][:-1]}


def test_prompts_without_responses_are_valid_for_distillation_with_a_warning():
    report = validate_any_task(dataset(prompt_only_chat, replace={4: chat(4), 9: chat(9)}))
    assert report.ok and len(report.examples) == 100
    [warning] = report.problems
    assert warning.severity == "warning"
    assert warning.message.startswith("98 of the 100 examples are prompts without a response")
    assert "lines 4, 9 have a response" in warning.message
    assert implied_task(report) == "distillation"
    [only_prompts] = validate_any_task(dataset(prompt_only_chat)).problems
    assert only_prompts.message.startswith("100 of the 100 examples are prompts")
    assert "have a response" not in only_prompts.message
    assert implied_task(validate_any_task(dataset())) == "supervised"
    assert implied_task(validate_any_task(dataset(openai_preference))) == "preference"


@pytest.mark.parametrize("make", [chat, vertex, MAKERS[DatasetFormat.PROMPT_COMPLETION]])
def test_a_few_prompt_only_lines_in_a_supervised_file_are_errors_by_line_and_field(make):
    prompt_only = {
        chat: prompt_only_chat(3),
        vertex: {"contents": vertex(3)["contents"][:1]},
    }.get(make, {"prompt": "q3"})
    replace = {3: prompt_only, 40: prompt_only, 77: prompt_only}
    report = validate_any_task(dataset(make, replace=replace))
    assert not report.ok and implied_task(report) == "supervised"
    errors = [(p.line, p.field) for p in report.problems if p.severity == "error"]
    assert [line for line, _ in errors] == [3, 40, 77]
    assert all(field for _, field in errors)  # each names the field: messages[1], completion


def test_a_broken_line_among_prompts_is_the_one_error_reported():
    report = validate_any_task(dataset(prompt_only_chat, replace={7: {"messages": "hello"}}))
    assert [(p.line, p.severity) for p in report.problems] == [(7, "error"), (0, "warning")]

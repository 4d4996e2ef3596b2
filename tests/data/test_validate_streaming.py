"""Validation without keeping the examples: the same report, in memory that does not grow with
the file (what an upload's background validation relies on)."""

from __future__ import annotations

import dataclasses
import json
import random
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.data.test_fuzz import FUZZ, jsonl_files
from tests.data.test_validate import (
    BAD_LINES,
    MAKERS,
    chat,
    dataset,
    openai_preference,
    prompt_only_chat,
    vertex,
)

from tuneforge.data import format_vote, validate
from tuneforge.data.first_lines import FirstLines
from tuneforge.data.records import MAX_REPORTED_PROBLEMS, Conversation, DatasetFormat, Turn
from tuneforge.data.report import summary, to_json
from tuneforge.data.validate import implied_task, validate_any_task, validate_dataset

TASKS = ["supervised", "preference", "distillation"]


def without_examples(report: validate.ValidationReport) -> validate.ValidationReport:
    return dataclasses.replace(report, examples=[], lines=[])


def assert_same_without_examples(source, **kwargs) -> validate.ValidationReport:
    """validate_dataset (or validate_any_task, with no kwargs but ``any_task``) gives the same
    report with and without keep_examples, but for the examples themselves."""
    call = validate_any_task if kwargs.pop("any_task", False) else validate_dataset
    kept = call(source, **kwargs)
    streamed = call(source, keep_examples=False, **kwargs)
    assert streamed.examples == [] and streamed.lines == []
    assert streamed == without_examples(kept)
    assert kept.example_count == len(kept.examples) == len(kept.lines)
    return streamed


def mixed_file(seed: int, count: int) -> bytes:
    """Lines of every format, prompt-only lines, bad lines, blank lines and many duplicates."""
    rng = random.Random(seed)
    makers = [*MAKERS.values(), prompt_only_chat, lambda i: {"prompt": f"q{i}"}]
    main = rng.choice(makers)
    lines = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.6:
            lines.append(json.dumps(main(rng.randint(0, count // 3))).encode())
        elif roll < 0.8:
            lines.append(json.dumps(rng.choice(makers)(rng.randint(0, 5))).encode())
        else:
            lines.append(rng.choice([*BAD_LINES, b"", b"  "]))
    return b"\n".join(lines)


FIXTURES = {
    **{f"valid {fmt.value}": (dataset(make), fmt.is_preference) for fmt, make in MAKERS.items()},
    "bad lines": (b"\n".join([json.dumps(chat(0)).encode(), *BAD_LINES * 3]), False),
    "duplicates": (dataset(replace={7: chat(2), 9: chat(2), 50: chat(2)}), False),
    "a vertex line in a chat file": (dataset(replace={6: vertex(6)}), False),
    "a chat file for preference": (dataset(), True),
    "prompts": (dataset(prompt_only_chat, replace={4: chat(4), 9: chat(9)}), False),
    "past the problem cap": (b"x\n" * (MAX_REPORTED_PROBLEMS + 50), False),
    "empty": (b"", False),
}


@pytest.mark.parametrize("name", FIXTURES)
def test_without_examples_the_report_is_the_same_on_every_fixture(name):
    data, preference = FIXTURES[name]
    assert_same_without_examples(data, task="preference" if preference else "supervised")
    assert_same_without_examples(data, any_task=True)


@pytest.mark.parametrize("seed", range(6))
def test_without_examples_the_report_is_the_same_on_mixed_files(seed, tmp_path):
    data = mixed_file(seed, count=1500)
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(data)
    for task in TASKS:
        assert_same_without_examples(data, task=task)
        assert_same_without_examples(path, task=task)
    assert_same_without_examples(path, any_task=True)
    report = assert_same_without_examples(data, any_task=True)
    assert report.warning_count  # the generated duplicates are found


@FUZZ
@given(data=jsonl_files() | st.binary(max_size=500), task=st.sampled_from(TASKS))
def test_without_examples_the_report_is_the_same_on_random_files(data, task):
    assert_same_without_examples(data, task=task)
    assert_same_without_examples(data, any_task=True)


def test_without_examples_long_examples_are_still_reported(tiny_tokenizer):
    long = {"prompt": "word " * 200, "completion": "ok"}
    data = dataset(lambda i: {"prompt": f"q{i}", "completion": "a"}, replace={2: b"bad", 5: long})
    report = assert_same_without_examples(data, tokenizer=tiny_tokenizer, max_length=64)
    assert report.truncated == [3]
    assert len(report.token_counts) == report.example_count == 99


def test_without_examples_duplicates_name_both_lines():
    data = dataset(replace={7: chat(2), 9: chat(2)})
    report = validate_dataset(data, keep_examples=False)
    assert [p.message.split(";")[0] for p in report.problems] == [
        "lines 3 and 7 are the same example",
        "lines 3 and 9 are the same example",
    ]
    assert report.example_count == 100


def test_without_examples_the_implied_task_and_the_json_report_are_right():
    prompts = validate_any_task(dataset(prompt_only_chat), keep_examples=False)
    assert implied_task(prompts) == "distillation"
    assert implied_task(validate_any_task(dataset(), keep_examples=False)) == "supervised"
    preference = validate_any_task(dataset(openai_preference), keep_examples=False)
    assert implied_task(preference) == "preference"
    report = validate_any_task(dataset(replace={3: b"oops"}), keep_examples=False)
    assert to_json(report)["example_count"] == 99
    assert "99 valid examples" in summary(report).plain


def count_reads(monkeypatch) -> list[object]:
    reads: list[object] = []
    real = validate.read_jsonl

    def counting(source):
        reads.append(source)
        return real(source)

    monkeypatch.setattr(validate, "read_jsonl", counting)
    monkeypatch.setattr(format_vote, "read_jsonl", counting)
    return reads


@pytest.mark.parametrize(
    ("data", "task", "reads"),
    [
        (dataset(), "supervised", 2),
        (dataset(openai_preference), "preference", 2),  # was validated twice, once as supervised
        (dataset(replace={3: prompt_only_chat(3)}), "supervised", 2),  # a few prompts: errors
        (dataset(prompt_only_chat), "distillation", 3),
    ],
)
def test_validate_any_task_reads_the_file_as_few_times_as_it_can(monkeypatch, data, task, reads):
    calls = count_reads(monkeypatch)
    report = validate_any_task(data, keep_examples=False)
    assert implied_task(report) == task
    assert len(calls) == reads


def test_first_lines_finds_every_repeat_as_the_table_grows():
    table = FirstLines(capacity=8)
    examples = [Conversation((Turn("user", f"q{i}"), Turn("model", "a"))) for i in range(5000)]
    for line, example in enumerate(examples, start=1):
        assert table.first_line(example, line) == line
    assert table.first_line(Conversation((Turn("user", "q42"), Turn("model", "a"))), 9000) == 43
    assert table.first_line(Conversation((Turn("user", "q42"), Turn("model", "b"))), 9001) == 9001
    assert len(table) == 5001


def test_first_lines_costs_a_few_dozen_bytes_an_example():
    count = 50_000
    tracemalloc.start()
    table = FirstLines()
    for line in range(1, count + 1):
        table.first_line(Conversation((Turn("user", str(line)),)), line)
    size, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert table.bytes_per_example <= 36
    assert size / count < 40  # the arrays, a handful of small objects besides
    assert peak / count < 64  # while the table doubles, old and new arrays both live


def write_big_chat_file(path: Path, size_bytes: int) -> int:
    """Chat examples of about 2 KB, every 1,000th line broken JSON and every 700th the same
    example. Returns the number of lines."""
    rng = random.Random(0)
    words = [
        "the",
        "a",
        "model",
        "answer",
        "question",
        "data",
        "tune",
        "forge",
        "stream",
        "memory",
        "line",
        "file",
        "token",
    ]
    repeated = json.dumps(chat(1)).encode()
    count = written = 0
    with path.open("wb") as file:
        while written < size_bytes:
            count += 1
            if count % 1000 == 17:
                line = b'{"messages": [oops'
            elif count % 700 == 3:
                line = repeated
            else:
                question = " ".join(rng.choices(words, k=150))
                answer = " ".join(rng.choices(words, k=150))
                line = json.dumps(
                    {
                        "messages": [
                            {"role": "user", "content": f"{count} {question}"},
                            {"role": "assistant", "content": answer},
                        ]
                    }
                ).encode()
            file.write(line + b"\n")
            written += len(line) + 1
    return count


MEMORY_BOUND = 30 * 2**20


@pytest.mark.slow
def test_validating_a_big_file_without_examples_takes_little_memory(tmp_path):
    path = tmp_path / "big.jsonl"
    lines = write_big_chat_file(path, 45 * 2**20)
    tracemalloc.start()
    try:
        report = validate_any_task(path, keep_examples=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.format == DatasetFormat.OPENAI_CHAT
    broken = len(range(17, lines + 1, 1000))
    repeats = len(range(3, lines + 1, 700))
    assert report.error_count == broken
    assert report.warning_count == repeats - 1
    assert report.example_count == lines - broken
    assert peak < MEMORY_BOUND, f"validating 45 MB took {peak / 2**20:.0f} MB at its peak"

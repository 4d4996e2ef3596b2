"""Graders in OpenAI's shapes: each type scores what it should, a bad grader is refused naming
its field, and a grader that fails at run time scores 0 with the error recorded."""

from __future__ import annotations

import time

import pytest

from tuneforge.graders import GraderError, parse_grader, run_grader
from tuneforge.graders.python_sandbox import PythonLimits
from tuneforge.graders.spec import models_named

ON = PythonLimits(enabled=True, timeout_s=5, memory_bytes=256 << 20)


def check(operation: str, reference: str = "{{ item.answer }}") -> dict:
    return {"type": "string_check", "name": "c", "input": "{{ sample.output_text }}",
            "reference": reference, "operation": operation}  # fmt: skip


@pytest.mark.parametrize(
    ("operation", "sample", "reward"),
    [("eq", "42", 1.0), ("eq", "42 ", 0.0), ("ne", "41", 1.0), ("like", "it is 42.", 1.0),
     ("like", "it is 4 2", 0.0), ("ilike", "ANSWER", 1.0), ("like", "ANSWER", 0.0)],
)  # fmt: skip
def test_string_check(operation, sample, reward):
    reference = "answer" if sample in ("ANSWER",) else "{{ item.answer }}"
    grader = parse_grader(check(operation, reference))
    assert run_grader(grader, sample, {"answer": "42"}).reward == reward


def test_text_similarity_metrics_are_one_for_the_same_text_and_lower_for_other_text():
    for metric in ("fuzzy_match", "bleu", "gleu", "rouge_1", "rouge_2", "rouge_l"):
        grader = parse_grader(
            {"type": "text_similarity", "name": "s", "evaluation_metric": metric,
             "input": "{{ sample.output_text }}", "reference": "{{ item.ref }}"}
        )  # fmt: skip
        text = "the cat sat on the mat today"
        same = run_grader(grader, text, {"ref": text}).reward
        other = run_grader(grader, "a dog ran in the park", {"ref": text}).reward
        assert same == pytest.approx(1.0) and 0.0 <= other < 0.6, metric


def test_a_missing_item_field_scores_zero_with_the_error_named():
    result = run_grader(parse_grader(check("eq")), "42", {"other": 1})
    assert result.reward == 0.0
    assert "answer" in result.errors["invalid_variable_error"]


def test_multi_combines_scores_by_its_formula():
    grader = parse_grader({
        "type": "multi", "name": "m", "calculate_output": "0.25 * exact + 0.75 * max(near, 0)",
        "graders": {"exact": check("eq"), "near": check("like")},
    })  # fmt: skip
    result = run_grader(grader, "it is 42", {"answer": "42"})
    assert result.reward == pytest.approx(0.75)
    assert result.sub_rewards == {"exact": 0.0, "near": 1.0}


def test_a_formula_without_a_value_scores_zero_with_the_error_recorded():
    grader = parse_grader({"type": "multi", "name": "m", "calculate_output": "1 / exact",
                           "graders": {"exact": check("eq")}})  # fmt: skip
    result = run_grader(grader, "41", {"answer": "42"})
    assert result.reward == 0.0 and "formula_parse_error" in result.errors


def multi(formula: str) -> dict:
    return {"type": "multi", "name": "m", "calculate_output": formula,
            "graders": {"exact": check("eq")}}  # fmt: skip


JUDGED = [{"role": "user", "content": "Grade {{ sample.output_text }}"}]


@pytest.mark.parametrize(
    ("raw", "path", "fragment"),
    [
        ({"type": "regex_check", "name": "x"}, "grader.type", "is not one of the types"),
        ({**check("eq"), "operation": "startswith"}, "grader.operation", "eq"),
        (multi("exact +"), "grader", "not a formula"),
        (multi("__import__('os')"), "grader", "can be called"),
        (multi("exact.real"), "grader", "Attribute is not allowed"),
        (multi("other"), "grader", "'other' names no grader"),
        ({"type": "python", "name": "p", "source": "def grade(sample, item):\n  return ("},
         "grader", "does not compile"),
        ({"type": "text_similarity", "name": "s", "input": "a", "reference": "b",
          "evaluation_metric": "cosine"}, "grader", "embedding model"),
        ({"type": "score_model", "name": "j", "model": "m", "input": JUDGED, "range": [1, 0]},
         "grader", "low < high"),
        ({"type": "reward_model", "name": "rm", "model": "m" * 513}, "grader.model",
         "at most 512 characters"),
    ],
)  # fmt: skip
def test_a_bad_grader_is_refused_naming_what_is_wrong(raw, path, fragment):
    with pytest.raises(GraderError) as raised:
        parse_grader(raw)
    assert raised.value.param.startswith(path) and fragment in str(raised.value)


def python(source: str):
    return parse_grader({"type": "python", "name": "p", "source": source})


def test_a_python_grader_scores_with_the_sample_and_the_item():
    grader = python(
        "def grade(sample, item):\n    return float(sample['output_text'] == item['answer'])"
    )
    assert run_grader(grader, "42", {"answer": "42"}, python=ON).reward == 1.0
    assert run_grader(grader, "41", {"answer": "42"}, python=ON).reward == 0.0


def test_python_graders_are_off_unless_the_operator_turns_them_on():
    grader = python("def grade(sample, item):\n    return 1.0")
    result = run_grader(grader, "x", {})
    assert (
        result.reward == 0.0
        and "TUNEFORGE_PYTHON_GRADERS" in result.errors["python_grader_runtime_error"]
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("raise ValueError('no good')", "ValueError: no good"),
        ("while True:\n        pass", "ran past"),
        ("return len(bytearray(10 * 1024**3))", "memory"),
        ("import socket\n    socket.create_connection(('127.0.0.1', 5432))", "not allowed"),
        ("import subprocess\n    subprocess.run(['true'])", "not allowed"),
        ("return 'high'", "ValueError"),
    ],
)
def test_a_python_grader_that_fails_scores_zero_with_the_reason(body, fragment):
    grader = python(f"def grade(sample, item):\n    {body}")
    limits = PythonLimits(enabled=True, timeout_s=2, memory_bytes=256 << 20)
    started = time.monotonic()
    result = run_grader(grader, "x", {}, python=limits)
    assert time.monotonic() - started < 10
    assert result.reward == 0.0
    assert fragment in result.errors["python_grader_runtime_error"]


def test_a_score_model_grader_reads_the_judges_number_within_its_range():
    grader = parse_grader(
        {"type": "score_model", "name": "j", "model": "judge", "range": [0, 1], "input": JUDGED}
    )
    asked = []

    def judge(model, messages, params):
        asked.append((model, messages))
        return "Score: 0.8 out of 1"

    assert run_grader(grader, "an answer", {}, judge=judge).reward == 0.8
    assert asked == [("judge", [{"role": "user", "content": "Grade an answer"}])]
    assert run_grader(grader, "x", {}, judge=lambda *a: "7").reward == 1.0  # clamped
    unreadable = run_grader(grader, "x", {}, judge=lambda *a: "excellent")
    assert unreadable.reward == 0.0 and "no number" in unreadable.errors["model_grader_parse_error"]


def test_a_reward_model_grader_scores_the_prompt_and_the_answer_together():
    grader = parse_grader({"type": "reward_model", "name": "rm", "model": "ft:rm"})
    asked = []

    def reward_score(model, prompt, sample):
        asked.append((model, prompt, sample))
        return -2.5  # a reward model's score is unbounded

    prompt = [{"role": "user", "content": "2+2?"}]
    assert run_grader(grader, "4", {}, reward_score=reward_score, prompt=prompt).reward == -2.5
    assert asked == [("ft:rm", prompt, "4")]
    # Where no reward model is at hand, it scores 0 with the reason, as a judge would.
    alone = run_grader(grader, "4", {})
    assert alone.reward == 0.0 and "no reward model" in alone.errors["model_grader_server_error"]


def test_the_models_a_grader_names_are_found_inside_multi_graders():
    judge = {"type": "score_model", "name": "j", "model": "judge", "input": JUDGED}
    grader = parse_grader({"type": "multi", "name": "m", "calculate_output": "j + rm", "graders": {
        "j": judge, "rm": {"type": "reward_model", "name": "rm", "model": "ft:rm"}}})  # fmt: skip
    assert models_named(grader) == {"judge": False, "ft:rm": True}


def test_rouge_counts_shared_ngrams_and_the_longest_common_subsequence():
    from tuneforge.graders.text_similarity import similarity

    assert similarity("rouge_1", "The cat sat.", "the cat ran") == pytest.approx(2 / 3)
    assert similarity("rouge_2", "the cat sat", "the cat ran") == pytest.approx(1 / 2)
    # LCS "a c d": precision 3/3, recall 3/4.
    assert similarity("rouge_l", "a c d", "a b c d") == pytest.approx(6 / 7)
    assert similarity("rouge_1", "", "a b") == 0.0

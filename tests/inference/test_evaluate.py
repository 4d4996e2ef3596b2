"""`tuneforge evaluate`'s engine: prompts, candidates, report arithmetic, and one real run."""

from __future__ import annotations

import json
from statistics import fmean

import pytest
from rich.console import Console

from tuneforge.data.records import Conversation, Turn
from tuneforge.data.tokenize import prompt_ids
from tuneforge.errors import InvalidArgument
from tuneforge.inference.evaluate import (
    Candidate,
    evaluate_candidates,
    few_shot_prompt,
    output_budget,
    pick_shots,
    report_table,
    standard_candidates,
    to_json,
)
from tuneforge.inference.metrics import exact_match, rouge_l, token_f1
from tuneforge.inference.types import Completion, GenerationParams, GenerationResult, ModelTarget

SYSTEM = "Answer briefly."
TUNED = ModelTarget(name="tuned-model", base_source="base-folder", adapter_path="adapter")
BASE = ModelTarget(name="base-model", base_source="base-folder")
PARAMS = GenerationParams(max_output_tokens=8)


def example(question: str, answer: str) -> Conversation:
    return Conversation((Turn("user", question), Turn("model", answer)), system=SYSTEM)


TEST = [
    example("q1 is it good", "positive"),
    example("q2 rewrite it", "red (color)\nkiwi (fruit)"),
    example("q3 is it bad", "negative"),
]
# What the fake tuned model answers to each question; the fake base answers nothing.
TUNED_ANSWERS = {"q1 is it good": "positive", "q2 rewrite it": "kiwi (fruit)", "q3 is it bad": "x"}
SHOTS = [example("s1 one two", "positive"), example("s2 three", "negative")]


class FakeBackend:
    """Answers from a table; a prompt costs one token per word of its turns."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, GenerationParams]] = []

    def generate_batch(self, target, prompts, params):
        self.calls.append((target.name, len(prompts), params))
        answers = TUNED_ANSWERS if target == TUNED else {}
        results = []
        for prompt in prompts:
            text = answers.get(prompt.turns[-1].text, "")
            tokens = sum(len(turn.text.split()) for turn in prompt.turns)
            completion = Completion(text, finish_reason="stop", output_tokens=len(text.split()))
            results.append(GenerationResult(completions=[completion], prompt_tokens=tokens))
        return results


def test_few_shot_prompt_puts_the_shots_first_after_the_system_instruction():
    prompt = Conversation((Turn("user", "the question"),), system=SYSTEM)
    shot = Conversation((Turn("user", "u"), Turn("model", "m")), system="another instruction")
    combined = few_shot_prompt(prompt, [shot, shot])
    assert combined.system == SYSTEM
    assert [(t.role, t.text) for t in combined.turns] == [
        ("user", "u"), ("model", "m"), ("user", "u"), ("model", "m"), ("user", "the question"),
    ]  # fmt: skip
    assert few_shot_prompt(prompt, []) == prompt


def test_a_shot_without_an_answer_is_refused():
    prompt = Conversation((Turn("user", "q"),))
    with pytest.raises(InvalidArgument, match="few-shot example 1"):
        few_shot_prompt(prompt, [prompt])


def test_report_means_over_examples_hand_computed():
    report = evaluate_candidates(
        [Candidate("tuned", TUNED), Candidate("base", BASE)], TEST, FakeBackend(), PARAMS
    )
    tuned, base = report.candidates
    assert report.examples == 3 and tuned.examples == base.examples == 3
    # q1 exact; q2 "kiwi (fruit)" against 4 reference words: overlap 2 and LCS 2, so
    # precision 1, recall 1/2 -> 2/3 for both F1 and ROUGE-L; q3 wrong.
    assert tuned.exact_match == pytest.approx(1 / 3)
    assert tuned.token_f1 == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert tuned.rouge_l == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert tuned.mean_output_tokens == pytest.approx((1 + 2 + 1) / 3)
    assert tuned.mean_prompt_tokens == pytest.approx((4 + 3 + 4) / 3)
    assert [s.prediction for s in tuned.scores] == ["positive", "kiwi (fruit)", "x"]
    assert tuned.output_tokens_per_second == pytest.approx(4 / tuned.generation_s)
    assert (base.exact_match, base.token_f1, base.rouge_l) == (0.0, 0.0, 0.0)
    assert base.output_tokens_per_second == 0.0


def test_few_shot_costs_the_shots_prompt_tokens_on_every_request():
    candidates = [Candidate("base", BASE), Candidate("base 2-shot", BASE, SHOTS)]
    zero, few = evaluate_candidates(candidates, TEST, FakeBackend(), PARAMS).candidates
    shot_words = sum(len(t.text.split()) for shot in SHOTS for t in shot.turns)
    assert few.shots == 2
    assert few.mean_prompt_tokens == pytest.approx(zero.mean_prompt_tokens + shot_words)


def test_generation_is_batched_after_an_untimed_warm_up():
    backend = FakeBackend()
    test = [example(f"question {i}", "positive") for i in range(20)]
    evaluate_candidates([Candidate("base", BASE)], test, backend, PARAMS, batch_size=8)
    assert [size for _, size, _ in backend.calls] == [8, 8, 8, 4]
    assert backend.calls[0][2].max_output_tokens == 2
    assert all(params == PARAMS for _, _, params in backend.calls[1:])


def test_a_test_example_without_a_reference_is_named():
    test = [TEST[0], Conversation((Turn("user", "no answer"),))]
    with pytest.raises(InvalidArgument, match="test example 2"):
        evaluate_candidates([Candidate("base", BASE)], test, FakeBackend(), PARAMS)


def test_labels_must_differ():
    with pytest.raises(InvalidArgument, match="labels"):
        evaluate_candidates([Candidate("a", BASE), Candidate("a", TUNED)], TEST, FakeBackend())


def test_standard_candidates():
    train = [example(f"t{i}", "positive") for i in range(10)]
    teacher = Candidate("teacher", ModelTarget(name="teacher", base_source="big"))
    candidates = standard_candidates(TUNED, BASE, train, few_shot=3, extra=[teacher])
    assert [c.label for c in candidates] == ["tuned", "base", "base 3-shot", "teacher"]
    assert [c.target for c in candidates[:3]] == [TUNED, BASE, BASE]
    assert candidates[2].shots == pick_shots(train, 3)  # seeded: the same every time
    assert len(candidates[2].shots) == 3
    assert [c.label for c in standard_candidates(None, BASE, train, few_shot=0)] == ["base"]
    # More shots asked for than there are: all of them.
    assert len(standard_candidates(None, BASE, train[:2], few_shot=5)[1].shots) == 2


def test_json_and_table():
    report = evaluate_candidates(
        [Candidate("tuned", TUNED), Candidate("base", BASE)], TEST, FakeBackend(), PARAMS
    )
    data = json.loads(json.dumps(to_json(report, predictions=True)))
    tuned = data["candidates"][0]
    assert tuned["exact_match"] == pytest.approx(1 / 3)
    assert tuned["max_output_tokens"] == PARAMS.max_output_tokens
    assert len(tuned["samples"]) == 3 and len(tuned["predictions"]) == 3
    assert "predictions" not in to_json(report)["candidates"][0]
    console = Console(record=True, width=160)
    console.print(report_table(report))
    text = console.export_text()
    assert "tuned-model" in text and "0.333" in text


def test_tiny_base_zero_shot_against_few_shot(backend, base, tokenizer, sentiment):
    test = sentiment["test"][:4]
    candidates = standard_candidates(None, base, sentiment["train"], few_shot=2)
    report = evaluate_candidates(candidates, test, backend)
    zero, few = report.candidates
    assert (zero.label, few.label) == ("base", "base 2-shot")
    references = [e.turns[-1].text for e in test]
    longest = max(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references)
    budget = output_budget(longest)
    assert report.max_output_tokens == {"base": budget, "base 2-shot": budget}
    prompts = [Conversation(e.turns[:-1], e.system) for e in test]
    assert zero.mean_prompt_tokens == fmean(len(prompt_ids(p, tokenizer)) for p in prompts)
    assert few.mean_prompt_tokens > zero.mean_prompt_tokens
    for candidate in report.candidates:
        assert candidate.examples == 4
        pairs = [(s.prediction, s.reference) for s in candidate.scores]
        assert candidate.exact_match == fmean(exact_match(*pair) for pair in pairs)
        assert candidate.token_f1 == fmean(token_f1(*pair) for pair in pairs)
        assert candidate.rouge_l == fmean(rouge_l(*pair) for pair in pairs)
        scores = candidate.scores
        assert all(0 < s.output_tokens <= budget for s in scores)
        assert candidate.output_tokens_per_second > 0

"""``tuneforge evaluate``: a tuned model against its base, zero-shot and with examples in the
prompt, on the same held-out examples.

This is the comparison the cloud services' tuning guides ask users to make by hand: does tuning
beat prompt design, and how many prompt tokens does each need per request? For distillation the
same report compares student, teacher and untuned student, with the output speed of each.

Every test example is a conversation whose last turn is the reference answer (a model turn);
the turns before it are the prompt. Decoding is greedy, so a report is reproducible.
"""

from __future__ import annotations

import random
import time
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from statistics import fmean
from typing import TYPE_CHECKING, Any

from tuneforge.data.records import Conversation
from tuneforge.errors import InvalidArgument
from tuneforge.inference.batching import batch_group, generate_many
from tuneforge.inference.metrics import exact_match, rouge_l, token_f1
from tuneforge.inference.types import (
    GenerationParams,
    GenerationResult,
    InferenceBackend,
    ModelTarget,
    Request,
)

if TYPE_CHECKING:
    from rich.table import Table

BATCH_SIZE = 16
SAMPLE_COUNT = 3
DEFAULT_SHOT_SEED = 0


@dataclass(frozen=True)
class Candidate:
    """One contestant: a model, and the examples put in front of every prompt (few-shot)."""

    label: str
    target: ModelTarget
    shots: list[Conversation] = field(default_factory=list)


@dataclass(frozen=True)
class ExampleScore:
    prompt: str  # the last user turn, for reading samples
    reference: str
    prediction: str
    exact_match: float
    token_f1: float
    rouge_l: float
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class CandidateReport:
    label: str
    model: str
    shots: int
    scores: list[ExampleScore]
    # wall time of the batched generation calls, model loading excluded; a batch shared with
    # other candidates counts by this candidate's share of its rows
    generation_s: float

    @property
    def examples(self) -> int:
        return len(self.scores)

    def _mean(self, name: str) -> float:
        return fmean(getattr(score, name) for score in self.scores) if self.scores else 0.0

    @property
    def exact_match(self) -> float:
        return self._mean("exact_match")

    @property
    def token_f1(self) -> float:
        return self._mean("token_f1")

    @property
    def rouge_l(self) -> float:
        return self._mean("rouge_l")

    @property
    def mean_prompt_tokens(self) -> float:
        return self._mean("prompt_tokens")

    @property
    def mean_output_tokens(self) -> float:
        return self._mean("output_tokens")

    @property
    def output_tokens_per_second(self) -> float:
        total = sum(score.output_tokens for score in self.scores)
        return total / self.generation_s if self.generation_s > 0 else 0.0

    @property
    def samples(self) -> list[ExampleScore]:
        return self.scores[:SAMPLE_COUNT]


@dataclass(frozen=True)
class EvaluationReport:
    candidates: list[CandidateReport]
    examples: int
    max_output_tokens: dict[str, int]  # candidate label -> the output budget it was given


# --- prompts ---------------------------------------------------------------------------------


def is_complete(example: object) -> bool:
    """A supervised example that ends with a model turn after a user turn."""
    return (
        isinstance(example, Conversation)
        and len(example.turns) >= 2
        and example.turns[-1].role == "model"
        and example.turns[-2].role == "user"
    )


def split_reference(example: Conversation, index: int) -> tuple[Conversation, str]:
    """The prompt (every turn but the last) and the reference answer (the last, a model turn)."""
    if not is_complete(example):
        raise InvalidArgument(
            f"test example {index + 1}: expected a conversation ending with a user turn and "
            "then a model turn (the reference answer)",
            "test",
        )
    return replace(example, turns=example.turns[:-1]), example.turns[-1].text


def few_shot_prompt(prompt: Conversation, shots: Sequence[Conversation]) -> Conversation:
    """The prompt with every shot's turns before its own, after the prompt's system instruction.

    The shots' own system instructions are dropped: the prompt's is the one the model follows.
    """
    for index, shot in enumerate(shots):
        if not is_complete(shot):
            raise InvalidArgument(
                f"few-shot example {index + 1} must end with a model turn after a user turn",
                "shots",
            )
    turns = tuple(turn for shot in shots for turn in shot.turns)
    return replace(prompt, turns=(*turns, *prompt.turns))


def pick_shots(train: Sequence[object], count: int, seed: int = DEFAULT_SHOT_SEED) -> list:
    """``count`` complete training examples, a seeded sample (the first ones may all share one
    label when the file is sorted); all of them when there are fewer."""
    eligible = [example for example in train if is_complete(example)]
    if count >= len(eligible):
        return eligible
    return random.Random(seed).sample(eligible, count)


def standard_candidates(
    tuned: ModelTarget | None,
    base: ModelTarget,
    train: Sequence[object],
    few_shot: int,
    extra: Sequence[Candidate] = (),
    *,
    seed: int = DEFAULT_SHOT_SEED,
) -> list[Candidate]:
    """[tuned, base zero-shot, base with ``few_shot`` training examples in the prompt, *extra].

    The tuned model is left out when there is none, the few-shot base when ``few_shot`` is 0
    or the training set has no complete example.
    """
    candidates = [Candidate("tuned", tuned)] if tuned is not None else []
    candidates.append(Candidate("base", base))
    shots = pick_shots(train, few_shot, seed) if few_shot > 0 else []
    if shots:
        candidates.append(Candidate(f"base {len(shots)}-shot", base, shots))
    return [*candidates, *extra]


# --- evaluation ------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _tokenizer(source: str) -> Any:
    from tuneforge.models.loading import load_tokenizer

    return load_tokenizer(source)


def tokenizer_source(target: ModelTarget) -> str:
    """Where a target's tokenizer is: a full fine-tune's own folder if it has one, else the base."""
    folder = target.weights_path
    if folder is not None and (folder / "tokenizer_config.json").is_file():
        return str(folder)
    return target.base_source


def output_budget(longest_reference_tokens: int) -> int:
    """A bit more than the longest reference: room to see a model run on past the answer,
    without paying for a full default-length generation on every example."""
    return longest_reference_tokens + max(4, longest_reference_tokens // 4)


def greedy_params(references: Sequence[str], target: ModelTarget) -> GenerationParams:
    tokenizer = _tokenizer(tokenizer_source(target))
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in references]
    return GenerationParams(temperature=0.0, max_output_tokens=output_budget(max(lengths)))


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _prompt_length(conversation: Conversation) -> int:
    return len(conversation.system or "") + sum(len(turn.text) for turn in conversation.turns)


def _score(prompt: Conversation, reference: str, result: GenerationResult) -> ExampleScore:
    completion = result.completions[0]
    return ExampleScore(
        prompt=prompt.turns[-1].text,
        reference=reference,
        prediction=completion.text,
        exact_match=exact_match(completion.text, reference),
        token_f1=token_f1(completion.text, reference),
        rouge_l=rouge_l(completion.text, reference),
        prompt_tokens=result.prompt_tokens,
        output_tokens=completion.output_tokens,
    )


def _run_batched(
    requests: list[tuple[int, Request]], backend: InferenceBackend, batch_size: int
) -> tuple[list[GenerationResult], dict[int, float]]:
    """Every request's result (in order) and each candidate's share of the generation time.

    Requests go in batches of up to ``batch_size`` through ``generate_many``: the tuned model,
    the base and the few-shot base share one base, so they share batches. A batch's time is
    split among its candidates by their rows in it.
    """
    results: list[GenerationResult | None] = [None] * len(requests)
    seconds: dict[int, float] = {}
    groups: dict[Hashable, list[int]] = {}
    for index, (_, request) in enumerate(requests):
        groups.setdefault(batch_group(backend, request.target, request.params), []).append(index)
    warm_up = GenerationParams(temperature=0.0, max_output_tokens=2)
    for indices in groups.values():
        # An untimed short batch first: the backend loads the model on first use and torch sets
        # up its kernels on the first batched decoding steps; neither may count against speed.
        first = [requests[i][1] for i in indices[:batch_size]]
        generate_many(backend, [Request(r.target, r.prompt, warm_up) for r in first])
        # Prompts of similar length share a batch: less left padding to compute.
        order = sorted(indices, key=lambda i: _prompt_length(requests[i][1].prompt))
        for chunk in _chunks(order, batch_size):
            started = time.perf_counter()
            outcomes = generate_many(backend, [requests[i][1] for i in chunk])
            elapsed = time.perf_counter() - started
            for index, outcome in zip(chunk, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    raise outcome
                results[index] = outcome
                candidate = requests[index][0]
                seconds[candidate] = seconds.get(candidate, 0.0) + elapsed / len(chunk)
    return [result for result in results if result is not None], seconds


def evaluate_candidates(
    candidates: Sequence[Candidate],
    test: Sequence[Conversation],
    backend: InferenceBackend,
    params: GenerationParams | None = None,
    *,
    batch_size: int = BATCH_SIZE,
) -> EvaluationReport:
    """Every candidate answers every test example; scores are means over the examples.

    Without ``params``, decoding is greedy with an output budget a bit above the longest
    reference, counted with each candidate's own tokenizer. Candidates on one base share
    batches (the backend's mixed batches), so comparing many runs at the batched rate.
    """
    if not candidates:
        raise InvalidArgument("nothing to evaluate: no candidate models", "candidates")
    if not test:
        raise InvalidArgument("the test set has no examples", "test")
    labels = [candidate.label for candidate in candidates]
    if len(set(labels)) < len(labels):
        raise InvalidArgument(f"candidate labels must differ, got {labels}", "candidates")
    pairs = [split_reference(example, index) for index, example in enumerate(test)]
    prompts = [prompt for prompt, _ in pairs]
    references = [reference for _, reference in pairs]
    budgets, requests = {}, []
    for number, candidate in enumerate(candidates):
        chosen = params or greedy_params(references, candidate.target)
        budgets[candidate.label] = chosen.max_output_tokens
        for prompt in prompts:
            shown = few_shot_prompt(prompt, candidate.shots)
            requests.append((number, Request(candidate.target, shown, chosen)))
    results, seconds = _run_batched(requests, backend, batch_size)
    reports = []
    for number, candidate in enumerate(candidates):
        own = results[number * len(prompts) : (number + 1) * len(prompts)]
        scores = [
            _score(prompt, reference, result)
            for prompt, reference, result in zip(prompts, references, own, strict=True)
        ]
        reports.append(
            CandidateReport(
                label=candidate.label,
                model=candidate.target.name,
                shots=len(candidate.shots),
                scores=scores,
                generation_s=seconds.get(number, 0.0),
            )
        )
    return EvaluationReport(candidates=reports, examples=len(test), max_output_tokens=budgets)


# --- output ----------------------------------------------------------------------------------


def to_json(report: EvaluationReport, *, predictions: bool = False) -> dict[str, Any]:
    """The report as plain data; with ``predictions``, every example's prediction and scores."""

    candidates = []
    for candidate in report.candidates:
        data: dict[str, Any] = {
            "label": candidate.label,
            "model": candidate.model,
            "shots": candidate.shots,
            "examples": candidate.examples,
            "exact_match": candidate.exact_match,
            "token_f1": candidate.token_f1,
            "rouge_l": candidate.rouge_l,
            "mean_prompt_tokens": candidate.mean_prompt_tokens,
            "mean_output_tokens": candidate.mean_output_tokens,
            "output_tokens_per_second": candidate.output_tokens_per_second,
            "generation_s": candidate.generation_s,
            "max_output_tokens": report.max_output_tokens[candidate.label],
            "samples": [asdict(s) for s in candidate.samples],
        }
        if predictions:
            data["predictions"] = [asdict(s) for s in candidate.scores]
        candidates.append(data)
    return {"examples": report.examples, "candidates": candidates}


def report_table(report: EvaluationReport) -> Table:
    """The comparison, narrow enough for an 80-column terminal (the label names the shots)."""
    from rich.table import Table

    table = Table(title=f"Evaluation on {report.examples} held-out examples")
    table.add_column("candidate", style="bold")
    for name in ("exact match", "token F1", "ROUGE-L", "prompt tok/req", "output tok/s"):
        table.add_column(name, justify="right")
    for candidate in report.candidates:
        table.add_row(
            candidate.label,
            f"{candidate.exact_match:.3f}",
            f"{candidate.token_f1:.3f}",
            f"{candidate.rouge_l:.3f}",
            f"{candidate.mean_prompt_tokens:.1f}",
            f"{candidate.output_tokens_per_second:.0f}",
        )
    table.caption = "; ".join(f"{c.label}: {c.model}" for c in report.candidates)
    return table

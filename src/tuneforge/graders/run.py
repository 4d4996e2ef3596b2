"""Scoring one sample with a parsed grader. What goes wrong at run time (a missing item field,
a grader that raises, loops or allocates too much, a judge whose answer holds no number, a
formula with no value) scores 0 and is recorded in the result's ``errors``; never raised."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tuneforge.graders.formula import FormulaError, evaluate
from tuneforge.graders.python_sandbox import GraderRuntimeError, PythonLimits, run_python
from tuneforge.graders.spec import (
    Grader,
    Multi,
    Python,
    RewardModel,
    ScoreModel,
    StringCheck,
    TextSimilarity,
)
from tuneforge.graders.templates import TemplateVariableError, render, sample_namespace
from tuneforge.graders.text_similarity import similarity

# (model name, messages as [{"role", "content"}], sampling params) -> the judge's answer.
Judge = Callable[[str, list[dict[str, str]], dict[str, Any]], str]
# (reward model name, the prompt's messages, the sample) -> the reward model's score.
RewardScore = Callable[[str, list[dict[str, str]], str], float]
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass
class GraderResult:
    reward: float
    name: str
    type: str
    errors: dict[str, str] = field(default_factory=dict)  # OpenAI's error flag -> details
    sub_rewards: dict[str, float] = field(default_factory=dict)
    execution_time: float = 0.0


@dataclass(frozen=True)
class Context:
    sample: dict[str, Any]
    item: dict[str, Any]
    python: PythonLimits
    judge: Judge | None
    reward_score: RewardScore | None
    prompt: list[dict[str, str]]


def run_grader(
    grader: Grader,
    output_text: str,
    item: dict[str, Any] | None = None,
    *,
    python: PythonLimits = PythonLimits(),
    judge: Judge | None = None,
    reward_score: RewardScore | None = None,
    prompt: list[dict[str, str]] | None = None,
) -> GraderResult:
    """``prompt``: the messages the sample answers, which a reward model scores with it."""
    started = time.perf_counter()
    context = Context(
        sample_namespace(output_text), item or {}, python, judge, reward_score, prompt or []
    )
    result = _run(grader, context)
    result.execution_time = time.perf_counter() - started
    return result


def _run(grader: Grader, context: Context) -> GraderResult:
    if isinstance(grader, Multi):
        return _run_multi(grader, context)
    try:
        reward = _score(grader, context)
    except TemplateVariableError as err:
        return _failed(grader, "invalid_variable_error", str(err))
    except GraderRuntimeError as err:
        return _failed(grader, "python_grader_runtime_error", str(err))
    except JudgeError as err:
        return _failed(grader, "model_grader_parse_error", str(err))
    except RewardModelError as err:
        return _failed(grader, "model_grader_server_error", str(err))
    return GraderResult(reward=reward, name=grader.name, type=grader.type)


def _score(grader: Grader, context: Context) -> float:
    def text(template: str) -> str:
        return render(template, context.sample, context.item)

    if isinstance(grader, StringCheck):
        given, reference = text(grader.input), text(grader.reference)
        matched = {
            "eq": given == reference,
            "ne": given != reference,
            "like": reference in given,
            "ilike": reference.lower() in given.lower(),
        }[grader.operation]
        return float(matched)
    if isinstance(grader, TextSimilarity):
        return similarity(grader.evaluation_metric, text(grader.input), text(grader.reference))
    if isinstance(grader, Python):
        return run_python(grader.source, context.sample, context.item, context.python)
    if isinstance(grader, RewardModel):
        if context.reward_score is None:
            raise RewardModelError("no reward model is at hand here")
        return context.reward_score(grader.model, context.prompt, context.sample["output_text"])
    assert isinstance(grader, ScoreModel)
    return _judge_score(grader, context, text)


class JudgeError(RuntimeError):
    pass


class RewardModelError(RuntimeError):
    pass


def _judge_score(grader: ScoreModel, context: Context, text: Callable[[str], str]) -> float:
    if context.judge is None:
        raise JudgeError("no judge model is at hand here")
    messages = [{"role": m.role, "content": text(m.content)} for m in grader.input]
    answer = context.judge(grader.model, messages, grader.sampling_params)
    found = NUMBER.search(answer)
    if found is None:
        raise JudgeError(f"the judge's answer holds no number: {answer[:200]!r}")
    low, high = grader.range
    return min(max(float(found.group()), low), high)


def _run_multi(grader: Multi, context: Context) -> GraderResult:
    parts = {name: _run(sub, context) for name, sub in grader.graders.items()}
    scores = {name: part.reward for name, part in parts.items()}
    errors = {flag: detail for part in parts.values() for flag, detail in part.errors.items()}
    try:
        reward = evaluate(grader.calculate_output, scores)
    except FormulaError as err:
        errors["formula_parse_error"] = str(err)
        reward = 0.0
    return GraderResult(reward, grader.name, grader.type, errors, scores)


def _failed(grader: Grader, flag: str, detail: str) -> GraderResult:
    return GraderResult(reward=0.0, name=grader.name, type=grader.type, errors={flag: detail})

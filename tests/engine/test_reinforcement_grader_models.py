"""The models a reinforcement job's grader names are loaded in the job's own process: a
score_model judge answers there (the untuned tiny judge writes no number, so each answer scores
0 with the judge's own words as the reason, not "no judge at hand"), and a grader whose model
the run was not given is refused before training."""

from __future__ import annotations

import json

import pytest

from tuneforge.data.validate import load_examples
from tuneforge.engine.errors import TuningError
from tuneforge.engine.observer import TuningObserver
from tuneforge.engine.run import run_tuning
from tuneforge.engine.spec import TuningSpec

TINY = "tuneforge/tiny-chat"
JUDGE = {"type": "score_model", "name": "judge", "model": "the-judge",
         "input": [{"role": "user", "content": "Score 0 to 1: {{ sample.output_text }}"}],
         "sampling_params": {"max_completions_tokens": 4}}  # fmt: skip


class Events(TuningObserver):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def on_event(self, message: str, level: str = "info", data: dict | None = None) -> None:
        self.messages.append(message)


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "prompts.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"review: {i} ->"}]} for i in range(12)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return load_examples(path, task="distillation")


def spec(grader_models: dict) -> TuningSpec:
    hyperparameters = {"grader": JUDGE, "epochs": 1, "batch_size": 4, "num_generations": 2,
                       "max_completion_length": 4}  # fmt: skip
    return TuningSpec(base_model=TINY, method="reinforcement", hyperparameters=hyperparameters,
                      grader_models=grader_models)  # fmt: skip


def test_a_score_model_judge_answers_in_the_jobs_process(tmp_path, settings, prompts):
    judge = {"base_model": str(settings.data_dir / "models" / "tiny-chat")}
    events = Events()
    result = run_tuning(spec({"the-judge": judge}), prompts, [], tmp_path / "run", settings, events)
    assert result.outcome == "succeeded"
    assert result.tokens_per_second > 0  # the prompts and the sampled answers
    failures = [m for m in events.messages if m.startswith("grader error")]
    assert failures and "the judge's answer holds no number" in failures[0]


def test_a_grader_model_the_run_was_not_given_is_refused(tmp_path, settings, prompts):
    with pytest.raises(TuningError, match="judge 'the-judge' was not resolved"):
        run_tuning(spec({}), prompts, [], tmp_path / "run", settings)

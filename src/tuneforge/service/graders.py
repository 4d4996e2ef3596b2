"""Graders, checked and run for a project: python graders only where the operator allows them,
score_model graders judged by a model of this server (a base model, or the project's tuned one),
reward_model graders scored by one of the project's reward models. A reward model scores the
sample after the prompt it answered: the item's ``messages`` (OpenAI's reinforcement lines keep
the prompt there), or the sample alone when the item has none."""

from __future__ import annotations

from typing import Any

from tuneforge.config import Settings
from tuneforge.data.tokenize import text_conversation
from tuneforge.graders import Grader, GraderError, GraderResult, parse_grader, run_grader
from tuneforge.graders.python_sandbox import PythonLimits
from tuneforge.graders.spec import Python, RewardModel, ScoreModel, with_paths
from tuneforge.service.generation import GenerationService
from tuneforge.service.models import ModelService

JUDGE_MAX_TOKENS = 64


class GraderService:
    def __init__(self, settings: Settings, generation: GenerationService) -> None:
        self.settings = settings
        self.generation = generation

    def validate(self, project_id: str, raw: Any, param: str = "grader") -> Grader:
        grader = parse_grader(raw, param)
        check_grader(grader, param, project_id, self.settings, self.generation.models)
        return grader

    def run(
        self, project_id: str, raw: Any, model_sample: str, item: dict[str, Any] | None
    ) -> GraderResult:
        grader = self.validate(project_id, raw)

        def judge(model: str, messages: list[dict[str, str]], params: dict[str, Any]) -> str:
            from tuneforge.inference.types import GenerationParams

            asked = GenerationParams(
                temperature=float(params.get("temperature", 0.0)),
                max_output_tokens=int(params.get("max_completions_tokens", JUDGE_MAX_TOKENS)),
            )
            result = self.generation.generate(project_id, model, text_conversation(messages), asked)
            return result.completions[0].text

        def reward_score(model: str, prompt: list[dict[str, str]], sample: str) -> float:
            answered = text_conversation([*prompt, {"role": "assistant", "content": sample}])
            return self.generation.score(project_id, model, [answered])[0]

        return run_grader(
            grader,
            model_sample,
            item,
            python=PythonLimits.of(self.settings),
            judge=judge,
            reward_score=reward_score,
            prompt=prompt_messages(item),
        )


def check_grader(
    grader: Grader, param: str, project_id: str, settings: Settings, models: ModelService
) -> None:
    """What the grader's JSON cannot say by itself: python graders are allowed here, and each
    model it names is the project's (a judge generates, a reward model scores)."""
    for path, each in with_paths(grader, param):
        if isinstance(each, Python) and not settings.python_graders:
            raise GraderError(
                f"{path}: python graders are off on this server (the operator turns them "
                "on with TUNEFORGE_PYTHON_GRADERS=1)",
                path,
            )
        if isinstance(each, ScoreModel):
            models.generation_target(project_id, each.model, f"{path}.model")
        if isinstance(each, RewardModel):
            models.scoring_target(project_id, each.model, f"{path}.model")


def prompt_messages(item: dict[str, Any] | None) -> list[dict[str, str]]:
    """The item's ``messages`` that have a role and text content; [] when it has none."""
    messages = (item or {}).get("messages")
    if not isinstance(messages, list):
        return []
    return [
        {"role": m["role"], "content": m["content"]}
        for m in messages
        if isinstance(m, dict)
        and m.get("role") in ("system", "developer", "user", "assistant")
        and isinstance(m.get("content"), str)
    ]

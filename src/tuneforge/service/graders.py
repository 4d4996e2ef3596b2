"""Graders, checked and run for a project: python graders only where the operator allows them,
score_model graders judged by a model of this server (a base model, or the project's tuned one)."""

from __future__ import annotations

from typing import Any

from tuneforge.config import Settings
from tuneforge.data.records import Conversation, Turn
from tuneforge.graders import Grader, GraderError, GraderResult, parse_grader, run_grader
from tuneforge.graders.python_sandbox import PythonLimits
from tuneforge.graders.spec import Multi, Python
from tuneforge.service.generation import GenerationService

JUDGE_MAX_TOKENS = 64


class GraderService:
    def __init__(self, settings: Settings, generation: GenerationService) -> None:
        self.settings = settings
        self.generation = generation

    def validate(self, project_id: str, raw: Any, param: str = "grader") -> Grader:
        grader = parse_grader(raw, param)
        for path, each in _with_paths(grader, param):
            if isinstance(each, Python) and not self.settings.python_graders:
                raise GraderError(
                    f"{path}: python graders are off on this server (the operator turns them "
                    "on with TUNEFORGE_PYTHON_GRADERS=1)",
                    path,
                )
            if each.type == "score_model":
                self.generation.models.generation_target(project_id, each.model, f"{path}.model")
        return grader

    def run(
        self, project_id: str, raw: Any, model_sample: str, item: dict[str, Any] | None
    ) -> GraderResult:
        grader = self.validate(project_id, raw)

        def judge(model: str, messages: list[dict[str, str]], params: dict[str, Any]) -> str:
            from tuneforge.inference.types import GenerationParams

            system = "\n".join(
                m["content"] for m in messages if m["role"] in ("system", "developer")
            )
            turns = tuple(
                Turn("model" if m["role"] == "assistant" else "user", m["content"])
                for m in messages
                if m["role"] not in ("system", "developer")
            )
            conversation = Conversation(turns=turns, system=system or None)
            asked = GenerationParams(
                temperature=float(params.get("temperature", 0.0)),
                max_output_tokens=int(params.get("max_completions_tokens", JUDGE_MAX_TOKENS)),
            )
            result = self.generation.generate(project_id, model, conversation, asked)
            return result.completions[0].text

        return run_grader(
            grader, model_sample, item, python=PythonLimits.of(self.settings), judge=judge
        )


def _with_paths(grader: Grader, param: str):
    yield param, grader
    if isinstance(grader, Multi):
        for name, sub in grader.graders.items():
            yield f"{param}.graders.{name}", sub

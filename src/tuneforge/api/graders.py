"""OpenAI's grader routes: ``POST /v1/fine_tuning/alpha/graders/validate`` checks a grader and
answers it back; ``.../graders/run`` scores one model sample (and its dataset item) with it, in
OpenAI's ``GraderRunResponse`` shape. A grader that cannot run is a 400 naming its field; what
goes wrong while it runs scores 0 and is flagged in ``metadata.errors``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from tuneforge.api.openai import Project, Services, model_errors
from tuneforge.api.openai_schema import OpenAIObject, StrictRequest
from tuneforge.graders import GraderResult

router = APIRouter(prefix="/v1/fine_tuning/alpha/graders", tags=["openai"])
MAX_SAMPLE_CHARS = 1_000_000

# OpenAI's error flags, each false unless the run set it (GraderRunResponse.metadata.errors).
ERROR_FLAGS = (
    "formula_parse_error", "invalid_variable_error", "model_grader_parse_error",
    "model_grader_refusal_error", "model_grader_server_error", "other_error",
    "python_grader_runtime_error", "python_grader_server_error", "sample_parse_error",
    "truncated_observation_error", "unresponsive_reward_error",
)  # fmt: skip


class ValidateRequest(StrictRequest):
    grader: dict[str, Any]


class RunRequest(StrictRequest):
    grader: dict[str, Any]
    model_sample: str = Field(max_length=MAX_SAMPLE_CHARS)
    item: dict[str, Any] | None = None


class ValidateResponse(OpenAIObject):
    grader: dict[str, Any]


class RunResponse(OpenAIObject):
    reward: float
    metadata: dict[str, Any]
    sub_rewards: dict[str, float]
    model_grader_token_usage_per_model: dict[str, Any]


@router.post("/validate")
def validate(body: ValidateRequest, project: Project, service: Services) -> ValidateResponse:
    with model_errors("", {}):
        grader = service.graders.validate(project, body.grader)
    return ValidateResponse(grader=grader.model_dump(exclude_none=True))


@router.post("/run")
def run(body: RunRequest, project: Project, service: Services) -> RunResponse:
    with model_errors("", {}):
        result = service.graders.run(project, body.grader, body.model_sample, body.item)
    return run_response(result)


def run_response(result: GraderResult) -> RunResponse:
    errors: dict[str, Any] = {flag: flag in result.errors for flag in ERROR_FLAGS}
    errors["python_grader_runtime_error_details"] = result.errors.get("python_grader_runtime_error")
    errors["model_grader_server_error_details"] = result.errors.get("model_grader_parse_error")
    return RunResponse(
        reward=result.reward,
        metadata={
            "name": result.name,
            "type": result.type,
            "errors": errors,
            "execution_time": result.execution_time,
            "scores": result.sub_rewards or {result.name: result.reward},
            "token_usage": None,
            "sampled_model_name": None,
            # tuneforge's addition: each flag's details (OpenAI's flags say only that it was set)
            "error_details": result.errors,
        },
        sub_rewards=result.sub_rewards,
        model_grader_token_usage_per_model={},
    )

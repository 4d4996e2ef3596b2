"""Reinforcement tuning's hyperparameters: the shared ones, the grader that scores each sampled
answer, and GRPO's group size, answer length, sampling temperature and KL strength."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from tuneforge.engine.spec import Hyperparameters


class ReinforcementHyperparameters(Hyperparameters):
    grader: dict[str, Any] | None = Field(
        default=None,
        description="The grader (OpenAI's shapes) that scores each sampled answer; required.",
    )
    beta: float = Field(
        default=0.04,
        ge=0,
        le=10,
        description="KL penalty to the starting model: how far the policy may move from it.",
    )
    num_generations: int = Field(
        default=8, ge=2, le=64, description="Answers sampled per prompt (GRPO's group)."
    )
    max_completion_length: int = Field(
        default=64, ge=1, le=4096, description="Most tokens of a sampled answer."
    )
    temperature: float = Field(
        default=1.0, gt=0, le=2, description="Sampling temperature of the answers."
    )

    @field_validator("grader")
    @classmethod
    def _grader(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from tuneforge.graders import parse_grader

            parse_grader(value)  # a GraderError names the field
        return value

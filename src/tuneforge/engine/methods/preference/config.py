"""Preference tuning's hyperparameters: the shared ones and DPO's beta."""

from __future__ import annotations

from pydantic import Field

from tuneforge.engine.spec import Hyperparameters


class PreferenceHyperparameters(Hyperparameters):
    beta: float = Field(
        default=0.1,
        gt=0,
        le=10,
        description="DPO's KL strength: how far the policy may move from its reference.",
    )

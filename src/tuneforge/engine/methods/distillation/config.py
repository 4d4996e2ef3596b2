"""Distillation's hyperparameters: the shared ones and the divergence the student minimises."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tuneforge.engine.spec import Hyperparameters

# What a distilled student minimises: KL(teacher || student) covers all the teacher's likely
# tokens (the safe choice for a student that starts untrained), KL(student || teacher) seeks its
# modes, JSD lies between.
Divergence = Literal["forward_kl", "reverse_kl", "jsd"]


class DistillationHyperparameters(Hyperparameters):
    divergence: Divergence = Field(
        default="forward_kl",
        description="What the student minimises against its teacher's token distributions: "
        "forward_kl, reverse_kl or jsd.",
    )

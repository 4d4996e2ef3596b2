"""What a tuning run is asked to do: base model, method, mode and hyperparameters.

Every hyperparameter has a default, documented here and in the README. ``"auto"`` (as in
OpenAI's API) picks epochs and batch size from the dataset size.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tuneforge.errors import InvalidArgument

Method = Literal["supervised", "preference", "distillation"]
Mode = Literal["peft", "full"]
Auto = Literal["auto"]
# What a distilled student minimises: KL(teacher || student) covers all the teacher's likely
# tokens (the safe choice for a student that starts untrained), KL(student || teacher) seeks its
# modes, JSD lies between.
Divergence = Literal["forward_kl", "reverse_kl", "jsd"]

ADAPTER_SIZES = (1, 2, 4, 8, 16, 32)
# The default learning rate is the usual one at the width of a 7-8B model (4096): 2e-4 for a
# LoRA adapter (PEFT / QLoRA recipes), 2e-5 for all weights. Adam's best rate falls as a model
# gets wider (muP's 1/width rule), so it is scaled by REFERENCE_WIDTH / hidden_size:
# 1B (2048) -> 4e-4, Qwen2.5-0.5B (896) -> 9e-4, 70B (8192) -> 1e-4 for LoRA; the built-in
# tiny model (64) -> 6.4e-3 (the scale is capped at 32x). The multiplier scales this default,
# as Vertex's and OpenAI's `learning_rate_multiplier` scale theirs.
DEFAULT_LEARNING_RATE = {"peft": 2e-4, "full": 2e-5}
REFERENCE_WIDTH = 4096
# Preference tuning takes smaller steps. Published DPO recipes run at 1/40 (Zephyr) to 1/10
# (Tulu 3) of their SFT rate; a policy pushed far from its reference forgets how to end its
# answers. On the tiny model the SFT rate keeps the preferred label but loses the end-of-turn
# token after it, 1/10 barely moves it in two epochs, and 0.3 lifts it cleanly.
METHOD_LEARNING_RATE_SCALE: dict[Method, float] = {
    "supervised": 1.0,
    "preference": 0.3,
    "distillation": 1.0,
}


def default_learning_rate(
    mode: Mode, hidden_size: int | None, method: Method = "supervised"
) -> float:
    width_scale = REFERENCE_WIDTH / hidden_size if hidden_size else 1.0
    return (
        DEFAULT_LEARNING_RATE[mode]
        * min(max(width_scale, 0.5), 32.0)
        * METHOD_LEARNING_RATE_SCALE[method]
    )


# OpenAI's fine-tuning data guide picks epochs so that examples x epochs lands between these.
TARGET_EPOCHS = 3
# A distilled student runs twice the passes. Its teacher is usually sharp (0.003 nats of entropy
# at the tuned tiny teacher's label token), so the teacher's distribution says little more than
# its answer, and the student has the same plateau to leave as SFT: on the built-in task its loss
# sits at a coin flip over the label for about 100 steps. At 3 epochs 2 of 5 seeds were still
# there (0.80 and 0.90 of the teacher's exact match); at 6 epochs all five reached 0.97-1.0 of it.
# Validation loss against the teacher (early stopping) ends a run that has converged.
METHOD_EPOCH_SCALE: dict[Method, int] = {"supervised": 1, "preference": 1, "distillation": 2}
MIN_TARGET_EXAMPLES, MAX_TARGET_EXAMPLES = 100, 25_000
MIN_AUTO_EPOCHS, MAX_AUTO_EPOCHS = 1, 25


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int | Auto = Field(default="auto", description="Passes over the training set.")
    batch_size: int | Auto = Field(default="auto", description="Examples per optimizer step.")
    learning_rate: float | None = Field(
        default=None,
        gt=0,
        description="Peak learning rate; exclusive with the multiplier. Default: see "
        "default_learning_rate (2e-4 for LoRA at a 4096-wide model, scaled by width; "
        "0.3x that for preference tuning).",
    )
    learning_rate_multiplier: float | None = Field(
        default=None, gt=0, description="Scales the default learning rate of the mode."
    )
    adapter_size: int = Field(default=8, description="LoRA rank (peft mode): 1, 2, 4, 8, 16, 32.")
    max_seq_length: int = Field(default=2048, ge=8, description="Longer examples are cut.")
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1, description="Share of warmup steps.")
    weight_decay: float = Field(default=0.0, ge=0)
    early_stopping_patience: int = Field(
        default=2, ge=1, description="Epochs without a lower validation loss before stopping."
    )
    packing: bool = Field(
        default=False,
        description="Pack examples into rows of max_seq_length (fewer, fuller steps); off, each "
        "step is a padding-free batch of batch_size examples.",
    )
    beta: float = Field(default=0.1, gt=0, description="DPO's KL strength (preference method).")
    divergence: Divergence = Field(
        default="forward_kl",
        description="What a distilled student minimises against its teacher's token "
        "distributions (distillation method): forward_kl, reverse_kl or jsd.",
    )

    @model_validator(mode="after")
    def _check(self) -> Hyperparameters:
        if self.learning_rate is not None and self.learning_rate_multiplier is not None:
            raise InvalidArgument(
                "give either learning_rate or learning_rate_multiplier, not both",
                param="learning_rate_multiplier",
            )
        if self.adapter_size not in ADAPTER_SIZES:
            raise InvalidArgument(
                f"adapter_size must be one of {ADAPTER_SIZES}, got {self.adapter_size}",
                param="adapter_size",
            )
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if value != "auto" and value < 1:
                raise InvalidArgument(f"{name} must be at least 1 or 'auto'", param=name)
        return self


class TuningSpec(BaseModel):
    """A tuning run, as the engine sees it (no files, ids or HTTP: those are the service's)."""

    model_config = ConfigDict(extra="forbid")

    base_model: str
    method: Method = "supervised"
    mode: Mode = "peft"
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    seed: int = 42
    # Continue tuning: the checkpoint folder of a tuned model of base_model to start from.
    # A LoRA adapter goes on training in peft mode and is merged into the weights in full
    # mode; full weights replace the base's (peft mode adds a new adapter on top of them).
    init_adapter: str | None = None
    teacher_model: str | None = None  # distillation only, resolved like base_model
    # A tuned teacher: a checkpoint folder of a tuned model of teacher_model (an adapter,
    # merged in, or full weights).
    teacher_adapter: str | None = None


def auto_epochs(example_count: int, method: Method = "supervised") -> int:
    if example_count * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        epochs = math.ceil(MIN_TARGET_EXAMPLES / max(example_count, 1))
    elif example_count * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        epochs = max(MIN_AUTO_EPOCHS, MAX_TARGET_EXAMPLES // example_count)
    else:
        epochs = TARGET_EPOCHS
    return min(MAX_AUTO_EPOCHS, epochs * METHOD_EPOCH_SCALE[method])


def auto_batch_size(example_count: int) -> int:
    """A power of two near 1/32 of the dataset, between 1 and 64: a few dozen steps per epoch."""
    target = max(example_count / 32, 1)
    return int(min(64, 2 ** math.floor(math.log2(target))))


class ResolvedHyperparameters(BaseModel):
    """Hyperparameters with every ``auto`` and default made concrete for one dataset."""

    epochs: int
    batch_size: int
    learning_rate: float
    adapter_size: int
    max_seq_length: int
    warmup_ratio: float
    weight_decay: float
    early_stopping_patience: int
    packing: bool
    beta: float
    divergence: Divergence


def resolve_hyperparameters(
    hp: Hyperparameters,
    mode: Mode,
    example_count: int,
    *,
    hidden_size: int | None = None,
    model_max_length: int | None = None,
    method: Method = "supervised",
) -> ResolvedHyperparameters:
    learning_rate = hp.learning_rate or default_learning_rate(mode, hidden_size, method) * (
        hp.learning_rate_multiplier or 1.0
    )
    max_seq_length = hp.max_seq_length
    if model_max_length:
        max_seq_length = min(max_seq_length, model_max_length)
    return ResolvedHyperparameters(
        epochs=auto_epochs(example_count, method) if hp.epochs == "auto" else hp.epochs,
        batch_size=auto_batch_size(example_count) if hp.batch_size == "auto" else hp.batch_size,
        learning_rate=learning_rate,
        adapter_size=hp.adapter_size,
        max_seq_length=max_seq_length,
        warmup_ratio=hp.warmup_ratio,
        weight_decay=hp.weight_decay,
        early_stopping_patience=hp.early_stopping_patience,
        packing=hp.packing,
        beta=hp.beta,
        divergence=hp.divergence,
    )

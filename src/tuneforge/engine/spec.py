"""What a tuning run is asked to do: base model, method, mode and hyperparameters.

``Hyperparameters`` are the options every method shares; a method with options of its own
subclasses it in its folder under ``engine/methods/``. Every hyperparameter has a default,
documented here and in the README. ``"auto"`` (as in OpenAI's API) picks epochs and batch size
from the dataset size; :func:`resolve_hyperparameters` makes every default concrete, once, when
a run starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, StrictInt, model_validator

from tuneforge.engine.quantization import Quantization, refuse_unsupported_quantization
from tuneforge.errors import InvalidArgument

Mode = Literal["peft", "full"]
Auto = Literal["auto"]

ADAPTER_SIZES = (1, 2, 4, 8, 16, 32)
# The default learning rate, per mode, and the width it holds at; Adam's best rate falls as a
# model gets wider (muP's 1/width rule), so narrower models get it times width / hidden_size,
# at most 32x (the built-in tiny models, 64 wide).
#
# LoRA: 2e-4 at the width of a 7-8B model (4096), as in PEFT / QLoRA recipes, scaled by width
# both ways (down to half): 1B (2048) -> 4e-4, Qwen2.5-0.5B (896) -> 9e-4, 70B (8192) -> 1e-4.
#
# Full fine-tuning: published full-SFT recipes for 0.5B-8B models do not scale with width:
#   2e-5  Qwen2.5-0.5B and -1.5B: torchtune recipes/configs/qwen2_5/0.5B_full.yaml, 1.5B_full.yaml
#   2e-5  Qwen2-0.5B: TRL trl/scripts/sft.py (its "Full training" example; 2e-4 for LoRA)
#   2e-5  Llama 3.1 8B: torchtune recipes/configs/llama3_1/8B_full.yaml
#   2e-5  Mistral-7B: alignment-handbook recipes/zephyr-7b-beta/sft/config_full.yaml
#   5e-6  Qwen2.5-3B and -7B: torchtune recipes/configs/qwen2_5/3B_full.yaml, 7B_full.yaml
# So 2e-5 from the narrowest of them (Qwen2.5-0.5B, 896) up; only models narrower than any
# recipe's get more, by the width rule from 896 (tiny, 64 wide -> 2.8e-4). The multiplier
# scales this default, as Vertex's and OpenAI's `learning_rate_multiplier` scale theirs.


@dataclass(frozen=True)
class WidthRule:
    rate: float  # the default at ``width`` and (for full fine-tuning) wider
    width: int
    min_scale: float  # how far a wider model's rate may fall below ``rate``
    max_scale: float = 32.0


DEFAULT_LEARNING_RATE = {
    "peft": WidthRule(rate=2e-4, width=4096, min_scale=0.5),
    "full": WidthRule(rate=2e-5, width=896, min_scale=1.0),
}


def default_learning_rate(mode: Mode, hidden_size: int | None, method: str = "supervised") -> float:
    """The mode's rate at the model's width, times the method's scale (engine/methods/)."""
    from tuneforge.engine.methods import get_method

    rule = DEFAULT_LEARNING_RATE[mode]
    width_scale = rule.width / hidden_size if hidden_size else 1.0
    return (
        rule.rate
        * min(max(width_scale, rule.min_scale), rule.max_scale)
        * get_method(method).learning_rate_scale
    )


# OpenAI's fine-tuning data guide picks epochs so that examples x epochs lands between these.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES, MAX_TARGET_EXAMPLES = 100, 25_000
MIN_AUTO_EPOCHS, MAX_AUTO_EPOCHS = 1, 25
MAX_EPOCHS, MAX_BATCH_SIZE = 1000, 4096  # far past any real run: a typo, not a request


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Strict: JSON's true is no epoch count.
    epochs: StrictInt | Auto = Field(default="auto", description="Passes over the training set.")
    batch_size: StrictInt | Auto = Field(default="auto", description="Examples per optimizer step.")
    learning_rate: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Peak learning rate; exclusive with the multiplier. Default: see "
        "default_learning_rate (2e-4 for LoRA at a 4096-wide model, scaled by width; 2e-5 "
        "for full fine-tuning from 896 wide up; "
        "0.3x that for preference tuning).",
    )
    learning_rate_multiplier: float | None = Field(
        default=None, gt=0, le=100, description="Scales the default learning rate of the mode."
    )
    adapter_size: int = Field(default=8, description="LoRA rank (peft mode): 1, 2, 4, 8, 16, 32.")
    max_seq_length: int = Field(
        default=2048, ge=8, le=1_048_576, description="Longer examples are cut."
    )
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1, description="Share of warmup steps.")
    weight_decay: float = Field(default=0.0, ge=0, le=10)
    early_stopping_patience: int = Field(
        default=2,
        ge=1,
        le=1000,
        description="Epochs without a lower validation loss before stopping.",
    )
    packing: bool = Field(
        default=False,
        description="Pack examples into rows of max_seq_length (fewer, fuller steps); off, each "
        "step is a padding-free batch of batch_size examples.",
    )
    quantization: Quantization | None = Field(
        default=None,
        description="'nf4': load the base's linear layers in 4 bits (QLoRA, through "
        "bitsandbytes) and train the LoRA adapter on them; mode peft only. Absent: the base "
        "in the run's dtype.",
    )
    # What the run keeps on disk (not hyperparameters in the training sense, but options of a
    # run that every method shares and every surface passes on the same way).
    export_last_checkpoint_only: bool = Field(
        default=False,
        description="Keep only the last epoch's checkpoint (Vertex's exportLastCheckpointOnly); "
        "earlier epochs are deleted as the next one is saved.",
    )
    keep_optimizer_state: bool = Field(
        default=False,
        description="Keep the optimizer state of the newest checkpoint once the job succeeds "
        "(to tune further from exactly there); by default it is deleted.",
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
        for name, most in (("epochs", MAX_EPOCHS), ("batch_size", MAX_BATCH_SIZE)):
            value = getattr(self, name)
            if value != "auto" and not 1 <= value <= most:
                raise InvalidArgument(f"{name} must be 1 to {most} or 'auto'", param=name)
        return self


class GraderModelSource(BaseModel):
    """A model a grader names (a score_model's judge, a reward_model's reward model), resolved:
    its base, and a tuned model's checkpoint folder (an adapter or full weights)."""

    model_config = ConfigDict(extra="forbid")

    base_model: str
    tuned: str | None = None
    scores_only: bool = False  # a reward model: it scores rather than generates


class TuningSpec(BaseModel):
    """A tuning run, as the engine sees it (no files, ids or HTTP: those are the service's)."""

    model_config = ConfigDict(extra="forbid")

    base_model: str
    method: str = "supervised"  # a registered method (engine/methods/)
    mode: Mode = "peft"
    # An instance of the method's own hyperparameters type (given as a dict, or as the shared
    # options, it is read as that type).
    hyperparameters: SerializeAsAny[Hyperparameters] = Field(default_factory=Hyperparameters)
    seed: int = 42
    # Continue tuning: the checkpoint folder of a tuned model of base_model to start from.
    # A LoRA adapter goes on training in peft mode and is merged into the weights in full
    # mode; full weights replace the base's (peft mode adds a new adapter on top of them).
    init_adapter: str | None = None
    teacher_model: str | None = None  # distillation only, resolved like base_model
    # A tuned teacher: a checkpoint folder of a tuned model of teacher_model (an adapter,
    # merged in, or full weights).
    teacher_adapter: str | None = None
    # Reinforcement only: the models its grader names, by the names the grader uses.
    grader_models: dict[str, GraderModelSource] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _read_hyperparameters_as_the_methods(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("hyperparameters"), dict):
            method = data.get("method", "supervised")
            data = {
                **data,
                "hyperparameters": method_hyperparameters(method, data["hyperparameters"]),
            }
        return data

    @model_validator(mode="after")
    def _method_hyperparameters(self) -> TuningSpec:
        own = method_hyperparameters(self.method, self.hyperparameters)
        if own is not self.hyperparameters:
            self.hyperparameters = own
        refuse_unsupported_quantization(self.hyperparameters.quantization, self.mode)
        return self


def method_hyperparameters(method: str, given: Hyperparameters | dict) -> Hyperparameters:
    """``given`` as an instance of ``method``'s own hyperparameters type; unknown fields raise
    pydantic's ValidationError naming them."""
    from tuneforge.engine.methods import get_method

    wanted = get_method(method).hyperparameters
    if isinstance(given, wanted):
        return given
    if isinstance(given, Hyperparameters):
        given = given.model_dump(exclude_unset=True)
    return wanted.model_validate(given)


def auto_epochs(example_count: int, method: str = "supervised") -> int:
    if example_count * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        epochs = math.ceil(MIN_TARGET_EXAMPLES / max(example_count, 1))
    elif example_count * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        epochs = max(MIN_AUTO_EPOCHS, MAX_TARGET_EXAMPLES // example_count)
    else:
        epochs = TARGET_EPOCHS
    from tuneforge.engine.methods import get_method

    return min(MAX_AUTO_EPOCHS, epochs * get_method(method).epoch_scale)


def auto_batch_size(example_count: int) -> int:
    """A power of two near 1/32 of the dataset, between 1 and 64: a few dozen steps per epoch."""
    target = max(example_count / 32, 1)
    return int(min(64, 2 ** math.floor(math.log2(target))))


def resolve_hyperparameters(
    hp: Hyperparameters,
    mode: Mode,
    example_count: int,
    *,
    hidden_size: int | None = None,
    model_max_length: int | None = None,
    method: str = "supervised",
) -> Hyperparameters:
    """``hp`` (as ``method``'s own type) with every ``auto`` and default made concrete for one
    dataset and model: what the run trains with, and what the job shows once it starts."""
    hp = method_hyperparameters(method, hp)
    default = default_learning_rate(mode, hidden_size, method)
    learning_rate = hp.learning_rate or default * (hp.learning_rate_multiplier or 1.0)
    max_seq_length = hp.max_seq_length
    if model_max_length:
        max_seq_length = min(max_seq_length, model_max_length)
    return hp.model_copy(
        update={
            "epochs": auto_epochs(example_count, method) if hp.epochs == "auto" else hp.epochs,
            "batch_size": (
                auto_batch_size(example_count) if hp.batch_size == "auto" else hp.batch_size
            ),
            # Both, as facts: the rate trained with, and its ratio to the default (what
            # OpenAI's and Vertex's job objects show as the multiplier).
            "learning_rate": learning_rate,
            "learning_rate_multiplier": learning_rate / default,
            "max_seq_length": max_seq_length,
        }
    )

"""How a tuning run reports: the engine calls an observer; it never touches HTTP or a database.

The CLI's observer draws a progress bar; the job runner's writes events and metrics to the
store and answers ``stop_requested`` from the job's requested action.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from tuneforge.engine.memory_plan import MemoryPlan

StopRequest = Literal["cancel", "pause"]


@dataclass(frozen=True)
class StepMetrics:
    step: int
    total_steps: int
    epoch: float
    loss: float
    learning_rate: float
    grad_norm: float | None
    token_accuracy: float | None
    tokens_per_second: float
    non_padding_share: float
    elapsed_s: float
    eta_s: float | None
    extra: dict[str, float] = field(default_factory=dict)  # method-specific, e.g. DPO rewards

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    step: int
    train_loss: float
    valid_loss: float | None = None
    valid_token_accuracy: float | None = None
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CheckpointInfo:
    epoch: int
    step: int
    path: Path
    metrics: dict[str, float | None]
    # "resume": a mid-epoch save to go on from (after a pause, a crash or a restart);
    # "partial": a cancelled run's newest resume point, kept as a checkpoint of its own.
    kind: Literal["epoch", "resume", "partial"] = "epoch"


@dataclass(frozen=True)
class TrainingPlan:
    total_steps: int
    epochs: int
    steps_per_epoch: int
    train_examples: int
    validation_examples: int
    hyperparameters: dict[str, Any]
    resumed_from_step: int = 0


class TuningObserver:
    """No-op base: subclasses override what they care about."""

    def on_start(self, plan: TrainingPlan) -> None: ...

    def on_step(self, metrics: StepMetrics) -> None: ...

    def on_epoch(self, metrics: EpochMetrics) -> None: ...

    def on_checkpoint(self, checkpoint: CheckpointInfo) -> None: ...

    def on_event(self, message: str, level: str = "info", data: dict | None = None) -> None: ...

    def on_disk_use(self, total_bytes: int) -> None:
        """What the run's folder holds now (after each save, and once the run has ended)."""

    def on_memory_plan(self, plan: MemoryPlan) -> None:
        """The memory the run planned for, once it is sure to start (also sent as an event):
        a job's runner tells its scheduler, whose inference counts it against its budget."""

    def stop_requested(self) -> StopRequest | None:
        return None

"""What a tuning run produced, and which checkpoint becomes the tuned model's default."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from tuneforge.engine.observer import CheckpointInfo, EpochMetrics

Outcome = Literal["succeeded", "cancelled", "paused"]


@dataclass
class TuningResult:
    outcome: Outcome
    checkpoints: list[CheckpointInfo]
    epochs: list[EpochMetrics]
    default_checkpoint: CheckpointInfo | None
    default_reason: str
    steps: int
    elapsed_s: float
    trained_tokens: int
    tokens_per_second: float
    stopped_early: bool = False
    step_losses: list[tuple[int, float]] = field(default_factory=list)

    def to_json(self) -> dict:
        data = asdict(self)
        for checkpoint in [*data["checkpoints"], data["default_checkpoint"]]:
            if checkpoint:
                checkpoint["path"] = str(checkpoint["path"])
        return data

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2))


def choose_default_checkpoint(
    checkpoints: list[CheckpointInfo], epochs: list[EpochMetrics]
) -> tuple[CheckpointInfo | None, str]:
    """The best epoch checkpoint: lowest validation loss, or the last one without validation."""
    epoch_checkpoints = [c for c in checkpoints if c.kind == "epoch"]
    if not epoch_checkpoints:
        return None, "no epoch was completed"
    valid_loss = {e.epoch: e.valid_loss for e in epochs if e.valid_loss is not None}
    scored = [c for c in epoch_checkpoints if c.epoch in valid_loss]
    if not scored:
        last = epoch_checkpoints[-1]
        return last, f"no validation loss: the last epoch ({last.epoch}) is the default"
    best = min(scored, key=lambda c: (valid_loss[c.epoch], c.epoch))
    return best, (
        f"epoch {best.epoch} has the lowest validation loss ({valid_loss[best.epoch]:.4f}) "
        f"of {len(scored)} evaluated epochs"
    )

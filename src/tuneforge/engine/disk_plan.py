"""The disk a run's checkpoints take at most, checked against the free space before it starts.

A run keeps one checkpoint per epoch, trimmed to its weights (in the base's own dtype), and one
full save to resume from: the weights as trained plus AdamW's two fp32 moments per trained
parameter. While a new save is written the previous full save still exists, so the peak is the
kept checkpoints plus two full saves (engine/checkpoints.py says what is kept when).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tuneforge.engine.errors import TuningError
from tuneforge.sizes import byte_size

ADAM_STATE_BYTES = 8  # two fp32 moments per trained parameter


@dataclass(frozen=True)
class DiskPlan:
    save_bytes: int  # one full save: weights as trained and the optimizer state
    kept_bytes: int  # one trimmed checkpoint: its weights only
    kept_checkpoints: int  # epoch checkpoints that stay besides the newest save
    free_bytes: int

    @property
    def needed_bytes(self) -> int:
        return self.kept_checkpoints * self.kept_bytes + 2 * self.save_bytes

    def describe(self) -> str:
        needed, kept, save = (
            byte_size(n) for n in (self.needed_bytes, self.kept_bytes, self.save_bytes)
        )
        return (
            f"checkpoints need up to {needed} of disk ({self.kept_checkpoints} trimmed "
            f"checkpoints of {kept}, and two saves with optimizer state of {save}); "
            f"{byte_size(self.free_bytes)} free"
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "needed_bytes": self.needed_bytes,
            "free_bytes": self.free_bytes,
            "save_bytes": self.save_bytes,
            "kept_bytes": self.kept_bytes,
            "kept_checkpoints": self.kept_checkpoints,
        }


def plan_disk(
    model,
    *,
    full_weights: bool,
    epochs: int,
    last_epoch_only: bool,
    weights_dtype: torch.dtype | None,
    free_bytes: int,
) -> DiskPlan:
    """``model`` as it trains (a PEFT model's trainable parameters are its adapter's)."""
    trained = [p for p in model.parameters() if p.requires_grad]
    trained_count = sum(p.numel() for p in trained)
    saved = list(model.parameters()) if full_weights else trained
    weights = sum(p.numel() * p.element_size() for p in saved)
    kept = weights
    if full_weights and weights_dtype is not None:
        kept = sum(p.numel() * min(p.element_size(), weights_dtype.itemsize) for p in saved)
    return DiskPlan(
        save_bytes=weights + trained_count * ADAM_STATE_BYTES,
        kept_bytes=kept,
        kept_checkpoints=0 if last_epoch_only else max(epochs - 1, 0),
        free_bytes=free_bytes,
    )


def check_disk(plan: DiskPlan) -> None:
    if plan.needed_bytes <= plan.free_bytes:
        return
    raise TuningError(
        f"not enough disk for this job: its {plan.describe()} in the data dir. Free some space, "
        "keep only the last checkpoint (export_last_checkpoint_only), or tune a LoRA adapter "
        "rather than all weights",
        code="insufficient_disk",
    )

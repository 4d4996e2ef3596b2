"""Checkpoint folders on disk: each describes itself, so a resumed run knows what came before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tuneforge.engine.observer import CheckpointInfo, EpochMetrics

DESCRIPTION_FILE = "tuneforge_checkpoint.json"


def describe(checkpoint: CheckpointInfo, epoch_metrics: EpochMetrics | None) -> None:
    data = {
        "epoch": checkpoint.epoch,
        "step": checkpoint.step,
        "kind": checkpoint.kind,
        "metrics": checkpoint.metrics,
        "epoch_metrics": epoch_metrics.as_dict() if epoch_metrics else None,
    }
    (checkpoint.path / DESCRIPTION_FILE).write_text(json.dumps(data, indent=2))


def read_checkpoints(checkpoints_dir: Path) -> tuple[list[CheckpointInfo], list[EpochMetrics]]:
    """Complete checkpoints under ``checkpoints_dir`` (ordered by step) and their epochs."""
    checkpoints, epochs = [], []
    for description in checkpoints_dir.glob(f"*/{DESCRIPTION_FILE}"):
        data = json.loads(description.read_text())
        checkpoints.append(
            CheckpointInfo(
                epoch=data["epoch"],
                step=data["step"],
                path=description.parent,
                metrics=data["metrics"],
                kind=data["kind"],
            )
        )
        if data["epoch_metrics"]:
            epochs.append(EpochMetrics(**data["epoch_metrics"]))
    checkpoints.sort(key=lambda c: c.step)
    epochs.sort(key=lambda e: e.epoch)
    return checkpoints, epochs


def remove_incomplete(checkpoints_dir: Path) -> None:
    """Trainer folders a crash left before they were described are not safe to resume from."""
    if not checkpoints_dir.exists():
        return
    for folder in checkpoints_dir.iterdir():
        if folder.is_dir() and not (folder / DESCRIPTION_FILE).exists():
            shutil.rmtree(folder, ignore_errors=True)


def remove_resume_points(checkpoints_dir: Path) -> None:
    """Mid-epoch saves exist only to resume a paused run; a finished run drops them."""
    for folder in checkpoints_dir.glob("step-*"):
        shutil.rmtree(folder, ignore_errors=True)

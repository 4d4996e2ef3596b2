"""Checkpoint folders on disk: each describes itself, so a resumed run knows what came before.

What a run keeps: the newest save (an epoch's checkpoint or a mid-epoch resume point) holds all a
resume needs: the weights as trained and the optimizer, scheduler and random states. As soon as a
newer save is complete, an older resume point is deleted and an older epoch checkpoint is trimmed
to its weights, cast to the base model's own dtype (a bf16 base trained in fp32 on a CPU is kept
in bf16). So an optimizer state (twice the weights for AdamW) exists once, not once per epoch.
When the run ends (:func:`finish`) the newest save is trimmed too, unless asked to keep it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from tuneforge.engine.observer import CheckpointInfo, EpochMetrics
from tuneforge.engine.result import Outcome

DESCRIPTION_FILE = "tuneforge_checkpoint.json"
# What transformers' Trainer writes beside the weights to resume exactly: only the newest save
# needs them. trainer_state.json stays: it is small and says which step the folder holds.
# Under FSDP the Trainer also writes the gathered weights and optimizer state as accelerate
# loads them back (pytorch_model_fsdp*.bin, optimizer*.bin).
RESUME_STATE_PATTERNS = (
    "optimizer.pt",
    "scheduler.pt",
    "scaler.pt",
    "rng_state*.pth",
    "optimizer*.bin",
    "pytorch_model_fsdp*.bin",
)
FULL_WEIGHTS_PATTERN = "model*.safetensors"  # an adapter's file is adapter_model.safetensors


@dataclass(frozen=True)
class ResumePoints:
    """When a run saves a resume point mid-epoch: after ``every_s`` seconds of training or
    ``every_steps`` steps since its last save, whichever comes first (None: never by it)."""

    every_s: float | None = None
    every_steps: int | None = None

    def due(self, steps_since_save: int, seconds_since_save: float) -> bool:
        if self.every_steps is not None and steps_since_save >= self.every_steps:
            return True
        return self.every_s is not None and seconds_since_save >= self.every_s


@dataclass(frozen=True)
class Retention:
    """What a run keeps of its saves (from the run's options and its base model)."""

    last_epoch_only: bool = False  # Vertex's exportLastCheckpointOnly
    keep_optimizer_state: bool = False  # the newest save keeps its resume state at the end
    weights_dtype: torch.dtype | None = None  # full weights are kept in it once trimmed


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


def prune(checkpoints_dir: Path, retention: Retention) -> None:
    """After a save: every older save gives up what only the newest needs."""
    saves, _ = read_checkpoints(checkpoints_dir)
    for older in saves[:-1]:
        if older.kind == "resume" or (retention.last_epoch_only and older.kind == "epoch"):
            shutil.rmtree(older.path, ignore_errors=True)
        else:
            trim(older.path, retention.weights_dtype)


def finish(checkpoints_dir: Path, outcome: Outcome, retention: Retention) -> list[CheckpointInfo]:
    """What a run that ended keeps, in step order: its epoch checkpoints (only the last with
    ``last_epoch_only``) and, when it was cancelled mid-epoch, its newest resume point as a
    "partial" checkpoint, so the work done since the last epoch stays usable. A paused run
    keeps everything as it is: it goes on from its newest save."""
    saves, _ = read_checkpoints(checkpoints_dir)
    if outcome == "paused" or not saves:
        return saves
    newest = saves[-1]
    if outcome == "cancelled" and newest.kind == "resume":
        newest = replace(newest, kind="partial")
        describe(newest, None)
        saves[-1] = newest
    kept = [s for s in saves if s.kind != "resume"]
    if retention.last_epoch_only:
        kept = kept[-1:]
    for save in saves:
        if save not in kept and save is not newest:
            shutil.rmtree(save.path, ignore_errors=True)
    for save in kept:
        if not (save is newest and retention.keep_optimizer_state):
            trim(save.path, retention.weights_dtype)
    return kept


def trim(folder: Path, weights_dtype: torch.dtype | None) -> None:
    """Leave a save only its weights: no resume state, full weights in ``weights_dtype``."""
    for pattern in RESUME_STATE_PATTERNS:
        for path in folder.glob(pattern):
            path.unlink(missing_ok=True)
    if weights_dtype is not None:
        for path in folder.glob(FULL_WEIGHTS_PATTERN):
            cast_weights(path, weights_dtype)


def cast_weights(path: Path, dtype: torch.dtype) -> None:
    """Rewrite a safetensors file with its wider floating tensors cast down to ``dtype``
    (atomically: a crash leaves the old file or the new one); a no-op when none is wider."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    wider = [
        name
        for name, tensor in tensors.items()
        if tensor.is_floating_point() and tensor.element_size() > dtype.itemsize
    ]
    if not wider:
        return
    for name in wider:
        tensors[name] = tensors[name].to(dtype)
    partial = path.with_name(f".{path.name}.partial")
    save_file(tensors, partial, metadata=metadata)
    os.replace(partial, path)
    _record_dtype(path.parent / "config.json", dtype)


def _record_dtype(config_file: Path, dtype: torch.dtype) -> None:
    """The folder's config says the dtype its weights are now in (what loaders default to)."""
    if not config_file.is_file():
        return
    config = json.loads(config_file.read_text())
    name = str(dtype).removeprefix("torch.")
    for key in ("dtype", "torch_dtype"):
        if key in config:
            config[key] = name
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def folder_bytes(folder: Path) -> int:
    """The bytes of the files under ``folder`` (0 when it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:  # deleted while counted (a save being pruned)
                continue
    return total

"""What a tuning run does differently when it is one rank of several under torch.distributed.

The job's runner starts the ranks (``jobs/ranks.py``, torch's elastic launcher); each runs the
same engine code on its share of every batch, and transformers' Trainer (through accelerate)
wraps the model: DDP for a LoRA adapter, FSDP2 for full weights (:func:`sharding_arguments`).
What must happen once happens on rank 0: the observer's reports (progress, events, checkpoint
rows) and the checkpoint folder's bookkeeping (renames, pruning). What every rank must agree on
goes through a collective: whether to stop (:class:`RankObserver`), and when a save is complete.

Outside a launch (``WORLD_SIZE`` unset) every function here is a no-op and rank 0 is the only
rank.
"""

from __future__ import annotations

import os
from typing import Any

from tuneforge.engine.observer import (
    CheckpointInfo,
    EpochMetrics,
    StepMetrics,
    StopRequest,
    TrainingPlan,
    TuningObserver,
)

_STOPS: tuple[StopRequest | None, ...] = (None, "cancel", "pause")


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_rank() -> bool:
    return rank() == 0


def _joined() -> bool:
    """Whether this process is one rank of several with its process group up (the Trainer's
    arguments bring it up)."""
    if world_size() == 1:
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    """Wait until every rank gets here (no-op alone)."""
    if _joined():
        import torch.distributed as dist

        dist.barrier()


def agree(choice: StopRequest | None) -> StopRequest | None:
    """Rank 0's ``choice`` on every rank. Every rank must call it at the same point."""
    if not _joined():
        return choice
    import torch
    import torch.distributed as dist

    code = torch.tensor([_STOPS.index(choice) if is_main_rank() else 0], dtype=torch.int64)
    dist.broadcast(code, src=0)
    return _STOPS[int(code.item())]


class RankObserver(TuningObserver):
    """Rank 0 reports through ``inner``; the other ranks say nothing. A stop request is rank
    0's, shared with every rank at each step's end (where the trainer asks for it), so all
    ranks stop at the same step; a rank that went on alone would wait in its next collective
    for ever."""

    def __init__(self, inner: TuningObserver) -> None:
        self.inner = inner
        self.main = is_main_rank()

    def on_start(self, plan: TrainingPlan) -> None:
        if self.main:
            self.inner.on_start(plan)

    def on_step(self, metrics: StepMetrics) -> None:
        if self.main:
            self.inner.on_step(metrics)

    def on_epoch(self, metrics: EpochMetrics) -> None:
        if self.main:
            self.inner.on_epoch(metrics)

    def on_checkpoint(self, checkpoint: CheckpointInfo) -> None:
        if self.main:
            self.inner.on_checkpoint(checkpoint)

    def on_event(self, message: str, level: str = "info", data: dict | None = None) -> None:
        if self.main:
            self.inner.on_event(message, level, data)

    def on_disk_use(self, total_bytes: int) -> None:
        if self.main:
            self.inner.on_disk_use(total_bytes)

    def on_memory_plan(self, plan) -> None:
        if self.main:
            self.inner.on_memory_plan(plan)

    def stop_requested(self) -> StopRequest | None:
        return agree(self.inner.stop_requested() if self.main else None)


def batch_for_ranks(batch_size: int) -> int:
    """An automatic ``batch_size`` made a multiple of the ranks (rounded up), so that each
    rank takes an equal share."""
    ranks = world_size()
    return -(-batch_size // ranks) * ranks


def per_rank_batch(batch_size: int) -> int:
    """Each rank's share of a ``batch_size`` batch: the ranks together make one optimizer step
    over the same examples a single process would."""
    ranks = world_size()
    if batch_size % ranks:
        from tuneforge.engine.errors import TuningError

        raise TuningError(
            f"batch_size {batch_size} does not split evenly over {ranks} devices; choose a "
            f"batch_size that is a multiple of {ranks}",
            code="invalid_request",
        )
    return batch_size // ranks


def sharding_arguments(mode: str) -> dict[str, Any]:
    """Trainer arguments for the ranks' model: FSDP2 (accelerate's plugin) shards full
    weights, their gradients and optimizer state across the ranks; a LoRA run keeps DDP, the
    Trainer's default (its trained weights are small, so every rank holds them whole)."""
    if world_size() == 1 or mode != "full":
        return {}
    return {
        "fsdp": "full_shard auto_wrap",
        "fsdp_config": {
            "version": 2,
            "transformer_layer_cls_to_wrap": None,
            "reshard_after_forward": True,
            "state_dict_type": "FULL_STATE_DICT",
            "cpu_ram_efficient_loading": False,
        },
    }


def shard_on_cpu(trainer) -> None:
    """Let FSDP2 shard a full fine-tuning run whose ranks are CPU processes.

    accelerate (1.15) takes the Trainer's FSDP plugin only on accelerators: on the CPU its
    state stays ``MULTI_CPU`` and it wraps the model in DDP instead. FSDP2's ``fully_shard``
    itself runs on the CPU with gloo, so the trainer is switched to it before training starts,
    as accelerate would have done on a GPU. Call right after the trainer is built."""
    plugin_arguments = getattr(trainer.args, "fsdp_plugin_args", None)
    if world_size() == 1 or plugin_arguments is None or trainer.is_fsdp_enabled:
        return
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = trainer.accelerator.state
    if state.distributed_type != DistributedType.MULTI_CPU:
        return
    state.fsdp_plugin = FullyShardedDataParallelPlugin(**plugin_arguments)
    state.distributed_type = DistributedType.FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    trainer.is_fsdp_enabled = True

"""What every tuning method shares: loading the model, the training arguments, and running a
TRL trainer to a :class:`TuningResult` with cancel, pause, resume and failures handled."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tuneforge.config import Settings
from tuneforge.engine.callbacks import TokenCounter, TuningCallback
from tuneforge.engine.checkpoints import read_checkpoints, remove_incomplete, remove_resume_points
from tuneforge.engine.errors import TuningError, out_of_memory_message
from tuneforge.engine.hardware import Hardware, detect_hardware, needs_gradient_checkpointing
from tuneforge.engine.observer import TrainingPlan, TuningObserver
from tuneforge.engine.result import TuningResult, choose_default_checkpoint
from tuneforge.engine.spec import ResolvedHyperparameters, TuningSpec
from tuneforge.models.loading import load_causal_lm, load_tokenizer, quiet_transformers
from tuneforge.models.resolve import resolve_base_model


@dataclass
class LoadedBase:
    model: Any
    tokenizer: Any
    hardware: Hardware
    source: str


def load_base_for_training(spec: TuningSpec, settings: Settings) -> LoadedBase:
    quiet_transformers()
    resolved = resolve_base_model(spec.base_model, settings)
    hardware = detect_hardware()
    tokenizer = load_tokenizer(resolved.source)
    model = load_causal_lm(
        resolved.source, dtype=hardware.dtype, attn_implementation=hardware.attn_implementation
    )
    # No KV cache while training: with it, transformers ignores the per-example position ids
    # of a padding-free batch and lets examples attend to each other.
    model.config.use_cache = False
    return LoadedBase(model, tokenizer, hardware, resolved.source)


def seed_everything(seed: int) -> None:
    """Same seed, same run: the adapter's initial weights, dropout and data order."""
    from transformers import set_seed

    set_seed(seed)


def lora_config(rank: int):
    from peft import LoraConfig

    return LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        # No dropout: a run resumed from a mid-epoch checkpoint then ends exactly where an
        # uninterrupted one does (dropout's random stream is not replayed identically).
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def check_vocabulary(token_ids: list[list[int]], model, tokenizer) -> None:
    vocabulary = model.get_input_embeddings().num_embeddings
    largest = max((max(ids) for ids in token_ids if ids), default=0)
    if largest >= vocabulary:
        raise TuningError(
            f"the tokenizer produces token id {largest} but the model has only {vocabulary} "
            "embeddings: the tokenizer does not belong to this model",
            code="invalid_model",
        )


def training_arguments(
    spec: TuningSpec,
    hp: ResolvedHyperparameters,
    base: LoadedBase,
    output_dir: Path,
    *,
    total_steps: int,
    has_validation: bool,
    tokens_per_step: int,
) -> dict[str, Any]:
    """Keyword arguments shared by the TRL configs (SFTConfig, DPOConfig, ...)."""
    config = base.model.config
    gradient_checkpointing = needs_gradient_checkpointing(
        base.hardware,
        parameters=sum(p.numel() for p in base.model.parameters()),
        hidden_size=getattr(config, "hidden_size", 0),
        layers=getattr(config, "num_hidden_layers", 0),
        tokens_per_step=tokens_per_step,
        full_weights=spec.mode == "full",
    )
    return {
        "output_dir": str(output_dir),
        "num_train_epochs": hp.epochs,
        "per_device_train_batch_size": hp.batch_size,
        "per_device_eval_batch_size": hp.batch_size,
        "learning_rate": hp.learning_rate,
        "lr_scheduler_type": "linear",
        "warmup_steps": math.ceil(hp.warmup_ratio * total_steps),
        "weight_decay": hp.weight_decay,
        "logging_steps": 1,
        "save_strategy": "epoch",
        "eval_strategy": "epoch" if has_validation else "no",
        "seed": spec.seed,
        "data_seed": spec.seed,
        "bf16": base.hardware.bf16,
        "fp16": False,
        "use_cpu": base.hardware.device == "cpu",
        "gradient_checkpointing": gradient_checkpointing,
        "report_to": [],
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "remove_unused_columns": False,
    }


def run_trainer(
    trainer,
    *,
    callback: TuningCallback,
    counter: TokenCounter,
    observer: TuningObserver,
    plan: TrainingPlan,
    hp: ResolvedHyperparameters,
    spec: TuningSpec,
    checkpoints_dir: Path,
    resume: bool,
) -> TuningResult:
    """Train (or go on training from the latest checkpoint) and describe the outcome."""
    resume_from = None
    if resume:
        remove_incomplete(checkpoints_dir)
        earlier, epochs = read_checkpoints(checkpoints_dir)
        if earlier:
            resume_from = earlier[-1]
            callback.restore(earlier, epochs)
            plan = TrainingPlan(**{**plan.__dict__, "resumed_from_step": resume_from.step})
            observer.on_event(
                f"resuming from {resume_from.path.name} (step {resume_from.step})",
                data={"step": resume_from.step, "checkpoint": resume_from.path.name},
            )
    observer.on_start(plan)
    started = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=str(resume_from.path) if resume_from else None)
    except torch.OutOfMemoryError as err:
        raise TuningError(
            out_of_memory_message(hp.batch_size, hp.max_seq_length, spec.mode),
            code="out_of_memory",
        ) from err
    elapsed = time.perf_counter() - started

    outcome = {"cancel": "cancelled", "pause": "paused", None: "succeeded"}[callback.stop]
    if outcome == "succeeded":
        remove_resume_points(checkpoints_dir)
    checkpoints, epochs = read_checkpoints(checkpoints_dir)
    default, reason = choose_default_checkpoint(checkpoints, epochs)
    if outcome == "succeeded" and default is not None:
        observer.on_event(f"default checkpoint: {reason}", data={"epoch": default.epoch})
    return TuningResult(
        outcome=outcome,
        checkpoints=[c for c in checkpoints if c.kind == "epoch"],
        epochs=epochs,
        default_checkpoint=default,
        default_reason=reason,
        steps=trainer.state.global_step,
        elapsed_s=elapsed,
        trained_tokens=counter.real_tokens,
        tokens_per_second=counter.real_tokens / elapsed if elapsed else 0.0,
        stopped_early=callback.stopped_early,
        step_losses=callback.step_losses,
    )

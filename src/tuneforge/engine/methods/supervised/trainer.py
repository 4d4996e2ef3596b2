"""Supervised fine-tuning: LoRA adapter or all weights, on loss-masked, padding-free batches (a
model that reads media: padded batches through its processor, engine/media_training.py)."""

from __future__ import annotations

from pathlib import Path

from trl import SFTConfig, SFTTrainer

from tuneforge.config import Settings
from tuneforge.data.media import media_limits
from tuneforge.data.records import Conversation
from tuneforge.engine.distributed import world_size
from tuneforge.engine.errors import TuningError
from tuneforge.engine.media_training import media_collator, prepare_media_sequences
from tuneforge.engine.observer import TuningObserver
from tuneforge.engine.spec import TuningSpec
from tuneforge.engine.training import (
    PreparedRun,
    load_base_for_training,
    padding_free_run,
    prepare_sequences,
    resolve_for_model,
)


def prepare_sft(
    spec: TuningSpec,
    train: list[Conversation],
    validation: list[Conversation],
    output_dir: Path,
    observer: TuningObserver,
    settings: Settings,
) -> PreparedRun:
    base = load_base_for_training(spec, settings)
    hp = resolve_for_model(spec, base.model, len(train))
    if base.processor is None:
        data = prepare_sequences(train, validation, base, hp, observer)
        collator = None
    else:  # a model that reads media: padded batches through its processor
        if world_size() > 1:
            raise TuningError(
                "a model that reads media trains on one device: its padded batches are not"
                " checked against one process's loss curve on several",
                code="invalid_hyperparameters",
            )
        limits = media_limits(settings)
        data = prepare_media_sequences(train, validation, base, hp, observer, limits)
        collator = media_collator(base.tokenizer)
    return padding_free_run(
        spec,
        base,
        hp,
        data,
        output_dir,
        observer,
        config_class=SFTConfig,
        trainer_class=SFTTrainer,
        collator=collator,
    )

"""Supervised fine-tuning: LoRA adapter or all weights, on loss-masked, padding-free batches."""

from __future__ import annotations

from pathlib import Path

from trl import SFTConfig, SFTTrainer

from tuneforge.config import Settings
from tuneforge.data.records import Conversation
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
    data = prepare_sequences(train, validation, base, hp, observer)
    return padding_free_run(
        spec, base, hp, data, output_dir, observer, config_class=SFTConfig, trainer_class=SFTTrainer
    )

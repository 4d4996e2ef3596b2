"""Supervised fine-tuning: LoRA adapter or all weights, on loss-masked, padding-free batches."""

from __future__ import annotations

from pathlib import Path

from trl import SFTConfig, SFTTrainer

from tuneforge.config import Settings
from tuneforge.data.records import Conversation
from tuneforge.engine.callbacks import TuningCallback
from tuneforge.engine.observer import TuningObserver
from tuneforge.engine.spec import TuningSpec
from tuneforge.engine.training import (
    PreparedRun,
    load_base_for_training,
    padding_free_collator,
    peft_config_for,
    prepare_sequences,
    resolve_for_model,
    seed_everything,
    training_arguments,
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
    checkpoints_dir = output_dir / "checkpoints"
    args = SFTConfig(
        **training_arguments(
            spec,
            hp,
            base,
            checkpoints_dir,
            total_steps=data.plan.total_steps,
            has_validation=data.valid_set is not None,
            tokens_per_step=data.tokens_per_step,
        ),
        # The padding-free collator is passed below, wrapped to count tokens; TRL refuses a
        # collator of ours when this flag is set, and the flag does nothing else.
        padding_free=False,
        max_length=None,
        dataset_kwargs={"skip_prepare_dataset": True},
    )
    counter = padding_free_collator(base.tokenizer)
    callback = TuningCallback(observer, counter, checkpoints_dir, hp.early_stopping_patience)
    seed_everything(spec.seed)  # the adapter's initial weights are drawn in SFTTrainer()
    trainer = SFTTrainer(
        model=base.model,
        args=args,
        data_collator=counter,
        train_dataset=data.train_set,
        eval_dataset=data.valid_set,
        processing_class=base.tokenizer,
        peft_config=peft_config_for(spec, hp, base.model),
        callbacks=[callback],
    )
    return PreparedRun(trainer, callback, counter, data.plan, hp, checkpoints_dir)

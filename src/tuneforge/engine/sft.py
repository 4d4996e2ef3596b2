"""Supervised fine-tuning: LoRA adapter or all weights, on loss-masked, padding-free batches."""

from __future__ import annotations

import math
from pathlib import Path

from datasets import Dataset
from trl import SFTConfig, SFTTrainer
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from tuneforge.config import Settings
from tuneforge.data.packing import pack_examples
from tuneforge.data.records import Conversation
from tuneforge.data.tokenize import TokenizedExample, tokenize_conversation
from tuneforge.engine.callbacks import TokenCounter, TuningCallback
from tuneforge.engine.errors import TuningError
from tuneforge.engine.observer import TrainingPlan, TuningObserver
from tuneforge.engine.result import TuningResult
from tuneforge.engine.spec import TuningSpec, resolve_hyperparameters
from tuneforge.engine.training import (
    check_vocabulary,
    load_base_for_training,
    lora_config,
    run_trainer,
    seed_everything,
    training_arguments,
)


def tokenize_for_training(
    examples: list[Conversation], tokenizer, max_length: int, observer: TuningObserver, name: str
) -> list[TokenizedExample]:
    tokenized = [tokenize_conversation(e, tokenizer, max_length) for e in examples]
    kept = [t for t in tokenized if t.trained_tokens]
    truncated = sum(t.truncated for t in tokenized)
    if truncated:
        observer.on_event(
            f"{truncated} {name} examples are longer than {max_length} tokens and were cut",
            level="warning",
        )
    if len(kept) < len(tokenized):
        observer.on_event(
            f"{len(tokenized) - len(kept)} {name} examples have no model tokens left after "
            f"cutting to {max_length} tokens and are skipped",
            level="warning",
        )
    if not kept:
        raise TuningError(
            f"no {name} example has a model turn within {max_length} tokens; raise "
            "max_seq_length or shorten the examples",
            code="invalid_training_file",
        )
    return kept


def _as_dataset(examples: list[TokenizedExample], packing: bool, row_length: int) -> Dataset:
    if packing:
        rows = pack_examples(examples, row_length)
        return Dataset.from_dict(
            {
                "input_ids": [r.input_ids for r in rows],
                "labels": [r.labels for r in rows],
                "seq_lengths": [r.seq_lengths for r in rows],
            }
        )
    return Dataset.from_dict(
        {"input_ids": [e.input_ids for e in examples], "labels": [e.labels for e in examples]}
    )


def train_sft(
    spec: TuningSpec,
    train: list[Conversation],
    validation: list[Conversation],
    output_dir: Path,
    observer: TuningObserver,
    settings: Settings,
    *,
    resume: bool = True,
) -> TuningResult:
    base = load_base_for_training(spec, settings)
    config = base.model.config
    hp = resolve_hyperparameters(
        spec.hyperparameters,
        spec.mode,
        len(train),
        hidden_size=getattr(config, "hidden_size", None),
        model_max_length=getattr(config, "max_position_embeddings", None),
    )
    train_tokens = tokenize_for_training(
        train, base.tokenizer, hp.max_seq_length, observer, "training"
    )
    valid_tokens = (
        tokenize_for_training(validation, base.tokenizer, hp.max_seq_length, observer, "validation")
        if validation
        else []
    )
    check_vocabulary([t.input_ids for t in train_tokens], base.model, base.tokenizer)
    train_set = _as_dataset(train_tokens, hp.packing, hp.max_seq_length)
    valid_set = _as_dataset(valid_tokens, hp.packing, hp.max_seq_length) if valid_tokens else None

    steps_per_epoch = math.ceil(len(train_set) / hp.batch_size)
    total_steps = steps_per_epoch * hp.epochs
    mean_length = sum(len(t.input_ids) for t in train_tokens) / len(train_tokens)
    checkpoints_dir = output_dir / "checkpoints"
    args = SFTConfig(
        **training_arguments(
            spec,
            hp,
            base,
            checkpoints_dir,
            total_steps=total_steps,
            has_validation=valid_set is not None,
            tokens_per_step=int(mean_length * hp.batch_size),
        ),
        # The padding-free collator is passed below, wrapped to count tokens; TRL refuses a
        # collator of ours when this flag is set, and the flag does nothing else.
        padding_free=False,
        max_length=None,
        dataset_kwargs={"skip_prepare_dataset": True},
    )
    pad_id = base.tokenizer.pad_token_id
    counter = TokenCounter(DataCollatorForLanguageModeling(pad_token_id=pad_id, padding_free=True))
    callback = TuningCallback(observer, counter, checkpoints_dir, hp.early_stopping_patience)
    seed_everything(spec.seed)  # the adapter's initial weights are drawn in SFTTrainer()
    trainer = SFTTrainer(
        model=base.model,
        args=args,
        data_collator=counter,
        train_dataset=train_set,
        eval_dataset=valid_set,
        processing_class=base.tokenizer,
        peft_config=lora_config(hp.adapter_size) if spec.mode == "peft" else None,
        callbacks=[callback],
    )
    plan = TrainingPlan(
        total_steps=total_steps,
        epochs=hp.epochs,
        steps_per_epoch=steps_per_epoch,
        train_examples=len(train_tokens),
        validation_examples=len(valid_tokens),
        hyperparameters=hp.model_dump(),
    )
    return run_trainer(
        trainer,
        callback=callback,
        counter=counter,
        observer=observer,
        plan=plan,
        hp=hp,
        spec=spec,
        checkpoints_dir=checkpoints_dir,
        resume=resume,
    )

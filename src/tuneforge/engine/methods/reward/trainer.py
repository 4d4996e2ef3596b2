"""Reward-model tuning with TRL's RewardTrainer: the base with a one-output score head, trained
on each pair's chosen and rejected conversation (rendered by the base's chat template as SFT
renders them, so the score reads what a policy will write).

With a LoRA adapter the score head trains in full beside it (PEFT's ``modules_to_save``), so the
adapter folder holds the head too. Evaluation reports the held-out pairwise accuracy (the share
of pairs whose chosen response scores higher) as each epoch's ``eval_accuracy``.
"""

from __future__ import annotations

from pathlib import Path

import datasets
from datasets import Dataset
from trl import RewardConfig, RewardTrainer
from trl.trainer.reward_trainer import DataCollatorForPreference

from tuneforge.config import Settings
from tuneforge.data.records import PreferenceExample
from tuneforge.data.tokenize import tokenize_conversation, with_response
from tuneforge.engine.callbacks import TokenCounter, TuningCallback
from tuneforge.engine.errors import TuningError
from tuneforge.engine.hardware import detect_hardware
from tuneforge.engine.memory_plan import Workload
from tuneforge.engine.observer import TuningObserver
from tuneforge.engine.quantization import prepare_quantized, quantized_loading
from tuneforge.engine.spec import TuningSpec
from tuneforge.engine.training import (
    LoadedBase,
    PreparedRun,
    check_vocabulary,
    lora_config,
    make_plan,
    plan_training_memory,
    resolve_for_model,
    seed_everything,
    training_arguments,
)
from tuneforge.models.loading import load_reward_model, load_tokenizer, quiet_transformers
from tuneforge.models.resolve import resolve_base_model
from tuneforge.models.threads import fit_cpu_threads


def load_reward_base(spec: TuningSpec, settings: Settings) -> LoadedBase:
    if spec.init_adapter:
        raise TuningError(
            "a reward model is tuned from a base model; tuning one further from a tuned model "
            "is not supported yet",
            code="invalid_model",
        )
    quiet_transformers()
    hardware = detect_hardware()
    resolved = resolve_base_model(spec.base_model, settings)
    tokenizer = load_tokenizer(resolved.source)
    quantization = spec.hyperparameters.quantization
    model = load_reward_model(
        resolved.source,
        tokenizer,
        dtype=hardware.weights_dtype(spec.mode),
        **quantized_loading(quantization, hardware.dtype),
    )
    if quantization:
        model = prepare_quantized(model)
    fit_cpu_threads(model)
    return LoadedBase(
        model,
        tokenizer,
        hardware,
        str(resolved.source),
        memory_limit_bytes=settings.training_memory_bytes,
    )


def pair_rows(
    examples: list[PreferenceExample], tokenizer, max_length: int, observer: TuningObserver, name
) -> list[dict]:
    rows, cut = [], 0
    for example in examples:
        chosen, rejected = (
            tokenize_conversation(with_response(example.prompt, response), tokenizer, max_length)
            for response in (example.chosen, example.rejected)
        )
        cut += chosen.truncated or rejected.truncated
        rows.append({"chosen_ids": chosen.input_ids, "rejected_ids": rejected.input_ids})
    if cut:
        observer.on_event(
            f"{cut} {name} pairs are longer than {max_length} tokens and were cut",
            level="warning",
        )
    return rows


def _pair_tokens(feature: dict) -> int:
    return len(feature["chosen_ids"]) + len(feature["rejected_ids"])


def prepare_reward(
    spec: TuningSpec,
    train: list[PreferenceExample],
    validation: list[PreferenceExample],
    output_dir: Path,
    observer: TuningObserver,
    settings: Settings,
) -> PreparedRun:
    datasets.disable_progress_bars()
    base = load_reward_base(spec, settings)
    hp = resolve_for_model(spec, base.model, len(train))
    tokenizer, max_length = base.tokenizer, hp.max_seq_length
    train_rows = pair_rows(train, tokenizer, max_length, observer, "training")
    valid_rows = (
        pair_rows(validation, tokenizer, max_length, observer, "validation") if validation else []
    )
    check_vocabulary(
        [r[k] for r in train_rows for k in ("chosen_ids", "rejected_ids")], base.model, tokenizer
    )
    plan = make_plan(hp, len(train_rows), len(train_rows), len(valid_rows))
    # A batch's chosen and rejected rows are padded to its longest; the head scores one value
    # per row, so there are no vocabulary-wide logits ("full" logits of one output).
    longest = sorted(
        (max(len(r["chosen_ids"]), len(r["rejected_ids"])) for r in train_rows), reverse=True
    )
    workload = Workload(
        batch_size=hp.batch_size,
        longest_rows=[2 * n for n in longest[: hp.batch_size]],
        padded=True,
    )
    memory = plan_training_memory(spec, hp, base, workload, observer)
    checkpoints_dir = output_dir / "checkpoints"
    args = RewardConfig(
        **training_arguments(
            spec,
            hp,
            base,
            checkpoints_dir,
            total_steps=plan.total_steps,
            has_validation=bool(valid_rows),
            memory=memory,
        ),
        max_length=None,  # cut above, as SFT cuts (TRL skips rows already tokenized)
    )
    collator = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)
    counter = TokenCounter(collator, _pair_tokens)
    callback = TuningCallback(observer, counter, checkpoints_dir, hp.early_stopping_patience)
    seed_everything(spec.seed)  # the score head's and the adapter's initial weights
    trainer = RewardTrainer(
        model=base.model,
        args=args,
        data_collator=counter,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(valid_rows) if valid_rows else None,
        processing_class=tokenizer,
        peft_config=lora_config(hp.adapter_size, "SEQ_CLS") if spec.mode == "peft" else None,
        callbacks=[callback],
    )
    observer.on_event("reward model: a score head on the base, trained on chosen over rejected")
    return PreparedRun(trainer, callback, counter, plan, hp, checkpoints_dir)

"""Preference tuning (DPO): the model learns to rank each chosen response above its rejected one.

The reference policy costs no second copy of the model. With a LoRA adapter it is the model with
the adapter disabled, or, when going on from a tuned adapter (SFT first, then preferences), a
frozen copy of that adapter beside the trained one. With all weights trained, the reference
log-probabilities are computed once, before training, by the model as it starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import datasets
from datasets import Dataset
from trl import DPOConfig, DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference

from tuneforge.config import Settings
from tuneforge.data.records import PreferenceExample
from tuneforge.data.tokenize import (
    chat_messages,
    prompt_ids,
    tokenize_conversation,
    with_response,
)
from tuneforge.engine.callbacks import DropReferenceAdapter, TokenCounter, TuningCallback
from tuneforge.engine.errors import TuningError
from tuneforge.engine.memory_plan import Workload
from tuneforge.engine.observer import TuningObserver
from tuneforge.engine.spec import TuningSpec
from tuneforge.engine.training import (
    PreparedRun,
    check_vocabulary,
    load_base_for_training,
    make_plan,
    peft_config_for,
    plan_training_memory,
    resolve_for_model,
    seed_everything,
    training_arguments,
)


@dataclass(frozen=True)
class PreferenceRows:
    """Pairs in TRL's conversational preference format, and the tokens each pair trains on."""

    rows: list[dict]
    pair_tokens: list[int]  # prompt + chosen and prompt + rejected, as cut to max_seq_length
    padded_tokens: list[int]  # the same, each padded to the longer of the two
    token_ids: list[list[int]]  # every rendered sequence, to check against the vocabulary


def preference_rows(
    examples: list[PreferenceExample],
    tokenizer,
    max_length: int,
    observer: TuningObserver,
    name: str,
) -> PreferenceRows:
    rows, pair_tokens, padded_tokens, token_ids = [], [], [], []
    cut = 0
    for example in examples:
        # TRL drops a pair whose prompt alone fills max_length; count it here to say so.
        if len(prompt_ids(example.prompt, tokenizer)) >= max_length:
            continue
        sequences = [
            tokenize_conversation(with_response(example.prompt, response), tokenizer).input_ids
            for response in (example.chosen, example.rejected)
        ]
        cut += any(len(ids) > max_length for ids in sequences)
        token_ids += sequences
        pair_tokens.append(sum(min(len(ids), max_length) for ids in sequences))
        padded_tokens.append(2 * max(min(len(ids), max_length) for ids in sequences))
        rows.append(
            {
                "prompt": chat_messages(example.prompt),
                "chosen": [{"role": "assistant", "content": example.chosen}],
                "rejected": [{"role": "assistant", "content": example.rejected}],
            }
        )
    if cut:
        observer.on_event(
            f"{cut} {name} pairs are longer than {max_length} tokens and were cut",
            level="warning",
        )
    if len(rows) < len(examples):
        observer.on_event(
            f"{len(examples) - len(rows)} {name} pairs have a prompt of {max_length} tokens or "
            "more, leaving no room for a response, and are skipped",
            level="warning",
        )
    if not rows:
        raise TuningError(
            f"every {name} pair has a prompt of {max_length} tokens or more; raise "
            "max_seq_length or shorten the prompts",
            code="invalid_training_file",
        )
    return PreferenceRows(rows, pair_tokens, padded_tokens, token_ids)


def _batch_tokens(feature: dict, max_length: int) -> int:
    """Real tokens a pair puts into a batch: its prompt twice, once before each response."""
    prompt = len(feature["prompt_ids"])
    return sum(min(prompt + len(feature[k]), max_length) for k in ("chosen_ids", "rejected_ids"))


def reference_description(trainer) -> str:
    if trainer.precompute_ref_logps:
        return "log-probabilities of the starting weights, computed once before training"
    if "ref" in getattr(trainer.model, "peft_config", {}):
        return "a frozen copy of the starting adapter"
    return "the starting model (the new adapter disabled)"


def prepare_dpo(
    spec: TuningSpec,
    train: list[PreferenceExample],
    validation: list[PreferenceExample],
    output_dir: Path,
    observer: TuningObserver,
    settings: Settings,
) -> PreparedRun:
    datasets.disable_progress_bars()  # DPOTrainer maps the datasets; our progress is reported
    base = load_base_for_training(spec, settings)
    hp = resolve_for_model(spec, base.model, len(train))
    tokenizer, max_length = base.tokenizer, hp.max_seq_length
    train_pairs = preference_rows(train, tokenizer, max_length, observer, "training")
    valid_pairs = (
        preference_rows(validation, tokenizer, max_length, observer, "validation")
        if validation
        else None
    )
    check_vocabulary(train_pairs.token_ids, base.model, tokenizer)

    plan = make_plan(
        hp,
        len(train_pairs.rows),
        len(train_pairs.rows),
        len(valid_pairs.rows) if valid_pairs else 0,
    )
    # A batch's pairs, chosen and rejected, are padded to its longest sequence.
    workload = Workload(
        batch_size=hp.batch_size,
        longest_rows=sorted(train_pairs.padded_tokens, reverse=True)[: hp.batch_size],
        padded=True,
    )
    memory = plan_training_memory(spec, hp, base, workload, observer)
    checkpoints_dir = output_dir / "checkpoints"
    args = DPOConfig(
        **training_arguments(
            spec,
            hp,
            base,
            checkpoints_dir,
            total_steps=plan.total_steps,
            has_validation=valid_pairs is not None,
            memory=memory,
        ),
        beta=hp.beta,
        # DPO plus the chosen answer's NLL (RPO, Pang et al. 2024). Plain DPO widened the margin
        # by pushing both answers down: the chosen one's log-prob fell from -1.3 to -6.4 and the
        # model stopped ending its answers ("negativenegative"), exact match 0.91 -> 0.17 on 2
        # of 4 seeds. With the NLL term seeds 1-5 and 42 end at 0.91-0.99.
        loss_type=["sigmoid", "sft"],
        loss_weights=[1.0, 1.0],
        max_length=max_length,
        # TRL 1.16 has no padding-free DPO ("temporarily unavailable"): pairs are padded to the
        # longest sequence of their batch.
        padding_free=False,
        precompute_ref_log_probs=spec.mode == "full",
    )
    collator = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id, max_length=max_length)
    counter = TokenCounter(collator, partial(_batch_tokens, max_length=max_length))
    callback = TuningCallback(observer, counter, checkpoints_dir, hp.early_stopping_patience)
    seed_everything(spec.seed)  # the adapter's initial weights are drawn in DPOTrainer()
    trainer = DPOTrainer(
        model=base.model,
        args=args,
        data_collator=counter,
        train_dataset=Dataset.from_list(train_pairs.rows),
        eval_dataset=Dataset.from_list(valid_pairs.rows) if valid_pairs else None,
        processing_class=tokenizer,
        peft_config=peft_config_for(spec, hp, base.model),
        callbacks=[DropReferenceAdapter(), callback],
    )
    counter.reset()  # the reference pass over the data, in full mode, trained nothing
    observer.on_event(f"DPO reference: {reference_description(trainer)}")
    return PreparedRun(trainer, callback, counter, plan, hp, checkpoints_dir)

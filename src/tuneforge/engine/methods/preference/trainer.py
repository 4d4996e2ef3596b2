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
from trl.trainer.dpo_trainer import DataCollatorForPreference, DataCollatorForVisionPreference

from tuneforge.config import Settings
from tuneforge.data.media import MediaLimits, media_limits
from tuneforge.data.media_tokenize import DecodedMedia, MediaEncoder, decode_media
from tuneforge.data.records import PreferenceExample
from tuneforge.data.tokenize import (
    chat_messages,
    prompt_ids,
    tokenize_conversation,
    with_response,
)
from tuneforge.engine.callbacks import DropReferenceAdapter, TokenCounter, TuningCallback
from tuneforge.engine.errors import TuningError
from tuneforge.engine.media_training import media_bytes
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


class PairEncoder:
    """A pair's token ids as the model reads them: through the tokenizer, or, for a prompt with
    images (a model that reads them), through its processor with the placeholders expanded."""

    def __init__(self, tokenizer, processor=None, limits: MediaLimits | None = None) -> None:
        self.tokenizer = tokenizer
        self.media = MediaEncoder(processor) if processor is not None else None
        self.limits = limits or MediaLimits()

    def encode(self, example: PreferenceExample) -> tuple[int, list[list[int]], DecodedMedia]:
        """The prompt's length, each response's full sequence, and the prompt's media."""
        prompt = example.prompt
        responses = (example.chosen, example.rejected)
        if not prompt.media:
            sequences = [
                tokenize_conversation(with_response(prompt, r), self.tokenizer).input_ids
                for r in responses
            ]
            return len(prompt_ids(prompt, self.tokenizer)), sequences, DecodedMedia()
        if self.media is None:
            raise TuningError(f"{prompt.media[0].path}: the base model reads text only")
        decoded = decode_media(prompt, media_bytes, self.limits, None)
        prompt_length = len(self.media.encode(prompt, decoded, generation_prompt=True).input_ids)
        sequences = [
            self.media.encode(with_response(prompt, r), decoded).input_ids for r in responses
        ]
        return prompt_length, sequences, decoded


def preference_rows(
    examples: list[PreferenceExample],
    encoder: PairEncoder,
    max_length: int,
    observer: TuningObserver,
    name: str,
) -> PreferenceRows:
    rows, pair_tokens, padded_tokens, token_ids = [], [], [], []
    cut = 0
    for example in examples:
        prompt_length, sequences, media = encoder.encode(example)
        # TRL drops a pair whose prompt alone fills max_length; count it here to say so.
        if prompt_length >= max_length:
            continue
        cut += any(len(ids) > max_length for ids in sequences)
        token_ids += sequences
        tokens = sum(min(len(ids), max_length) for ids in sequences)
        pair_tokens.append(tokens)
        padded_tokens.append(2 * max(min(len(ids), max_length) for ids in sequences))
        row = {
            "prompt": chat_messages(example.prompt, media.pages),
            "chosen": [{"role": "assistant", "content": example.chosen}],
            "rejected": [{"role": "assistant", "content": example.rejected}],
        }
        if example.prompt.media:  # TRL's image path: the pages and images fill the prompt's
            row |= {"images": media.images, "pair_tokens": tokens}
        rows.append(row)
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
    """Real tokens a pair puts into a batch: its prompt twice, once before each response (an
    image pair, which TRL's collator tokenizes itself, counted when its rows were made)."""
    if "pair_tokens" in feature:
        return int(feature["pair_tokens"])
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
    encoder = PairEncoder(tokenizer, base.processor, media_limits(settings))
    train_pairs = preference_rows(train, encoder, max_length, observer, "training")
    valid_pairs = (
        preference_rows(validation, encoder, max_length, observer, "validation")
        if validation
        else None
    )
    images = any("images" in row for row in train_pairs.rows)
    if images and spec.mode == "full":
        raise TuningError(
            "preference tuning with images trains a LoRA adapter: TRL computes the reference"
            " log-probabilities of image pairs with the adapter disabled, not once before"
            " training as it does for all weights",
            code="invalid_hyperparameters",
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
    if images:  # TRL's image path: its collator runs the processor on each batch
        collator = DataCollatorForVisionPreference(base.processor, max_length=max_length)
    else:
        collator = DataCollatorForPreference(
            pad_token_id=tokenizer.pad_token_id, max_length=max_length
        )
    counter = TokenCounter(collator, partial(_batch_tokens, max_length=max_length))
    callback = TuningCallback(observer, counter, checkpoints_dir, hp.early_stopping_patience)
    seed_everything(spec.seed)  # the adapter's initial weights are drawn in DPOTrainer()
    trainer = DPOTrainer(
        model=base.model,
        args=args,
        data_collator=counter,
        train_dataset=Dataset.from_list(train_pairs.rows),
        eval_dataset=Dataset.from_list(valid_pairs.rows) if valid_pairs else None,
        processing_class=base.processor if images else tokenizer,
        peft_config=peft_config_for(spec, hp, base.model),
        callbacks=[DropReferenceAdapter(), callback],
    )
    counter.reset()  # the reference pass over the data, in full mode, trained nothing
    observer.on_event(f"DPO reference: {reference_description(trainer)}")
    return PreparedRun(trainer, callback, counter, plan, hp, checkpoints_dir)

"""Supervised tuning of a model that reads media (a LLaVA, Qwen2-VL, Qwen2-Audio, ...): each
example encoded once through the model's processor, with its loss mask
(``data/media_tokenize.py``), and batched by :class:`MediaCollator`.

A media model's batches are padded, not packed: the towers' outputs replace placeholder tokens
row by row, which the padding-free path's one flat row would mix up. Examples longer than the
maximum length are skipped, not cut: a cut could split an image's run of placeholder tokens
from the pixels that fill it.
"""

from __future__ import annotations

from typing import Any

from tuneforge.data.media import MediaLimits
from tuneforge.data.media_tokenize import (
    MediaEncoder,
    MediaEncoding,
    audio_window,
    decode_media,
    sampling_rate,
)
from tuneforge.data.records import Conversation
from tuneforge.data.tokenize import IGNORE_INDEX
from tuneforge.engine.callbacks import TokenCounter
from tuneforge.engine.errors import TuningError
from tuneforge.engine.observer import TuningObserver
from tuneforge.engine.spec import Hyperparameters
from tuneforge.engine.training import LoadedBase, SequenceData, make_plan


def media_bytes(media) -> bytes:
    """A part's bytes: the runner resolved every file part before training."""
    if media.data is None:
        raise TuningError(f"{media.path}: the file {media.uri!r} was not read", code="internal")
    return media.data


class MediaCollator:
    """Pads a batch's rows to its longest (right side, IGNORE_INDEX labels) and concatenates
    each tower input along its first dimension, which counts media items (images, pages or
    audio clips), as the models' forward takes them for a batch."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        longest = max(len(row["input_ids"]) for row in rows)
        input_ids = torch.full((len(rows), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), longest), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for index, row in enumerate(rows):
            length = len(row["input_ids"])
            input_ids[index, :length] = torch.as_tensor(row["input_ids"])
            labels[index, :length] = torch.as_tensor(row["labels"])
            attention_mask[index, :length] = 1
        batch: dict[str, Any] = {
            "input_ids": input_ids,
            "labels": labels,
            "attention_mask": attention_mask,
        }
        media_keys = {key for row in rows for key in row if key not in batch}
        for key in sorted(media_keys):
            batch[key] = torch.cat([row[key] for row in rows if key in row])
        return batch


def media_row_tokens(row: dict[str, Any]) -> int:
    return len(row["input_ids"])


def media_collator(tokenizer) -> TokenCounter:
    return TokenCounter(MediaCollator(tokenizer.pad_token_id), tokens_of=media_row_tokens)


def encode_for_training(
    examples: list[Conversation],
    base: LoadedBase,
    max_length: int,
    limits: MediaLimits,
    observer: TuningObserver,
    name: str,
) -> list[MediaEncoding]:
    encoder = MediaEncoder(base.processor)
    rate, window = sampling_rate(base.processor), audio_window(base.processor)
    kept, too_long = [], 0
    for example in examples:
        decoded = decode_media(example, media_bytes, limits, rate, window)
        encoding = encoder.encode(example, decoded)
        if len(encoding.input_ids) > max_length:
            too_long += 1
        elif encoding.trained_tokens:
            kept.append(encoding)
    if too_long:
        observer.on_event(
            f"{too_long} {name} examples are longer than {max_length} tokens with their media"
            " and are skipped (an example with media is not cut)",
            level="warning",
        )
    if not kept:
        raise TuningError(
            f"no {name} example fits in {max_length} tokens with its media; raise "
            "max_seq_length or send fewer or smaller media",
            code="invalid_training_file",
        )
    return kept


def _rows(encodings: list[MediaEncoding]):
    """A dataset the trainers take (TRL wants ``datasets``'), rows read back as tensors."""
    from datasets import Dataset

    rows = [{"input_ids": e.input_ids, "labels": e.labels, **e.media_inputs} for e in encodings]
    return Dataset.from_list(rows).with_format("torch")


def prepare_media_sequences(
    train: list[Conversation],
    validation: list[Conversation],
    base: LoadedBase,
    hp: Hyperparameters,
    observer: TuningObserver,
    limits: MediaLimits,
) -> SequenceData:
    """Encode with the loss masks through the processor and build the datasets and the plan."""
    max_length = hp.max_seq_length
    train_rows = encode_for_training(train, base, max_length, limits, observer, "training")
    valid_rows = (
        encode_for_training(validation, base, max_length, limits, observer, "validation")
        if validation
        else []
    )
    lengths = sorted((len(e.input_ids) for e in train_rows), reverse=True)
    return SequenceData(
        train_set=_rows(train_rows),
        valid_set=_rows(valid_rows) if valid_rows else None,
        plan=make_plan(hp, len(train_rows), len(train_rows), len(valid_rows)),
        longest_rows=lengths[: hp.batch_size],
    )

"""Dataset statistics, the way Vertex reports them in ``tuningDataStats``.

Token counts come from the model's chat template (:func:`tuneforge.data.tokenize.count_tokens`):
input tokens are the system and user side with the template's markup, output tokens the model
side (for a preference example, the chosen response).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel

from tuneforge.data.media_check import media_counts
from tuneforge.data.records import Conversation, Example, PreferenceExample
from tuneforge.data.tokenize import count_tokens
from tuneforge.errors import InvalidArgument

if TYPE_CHECKING:  # numpy loads when statistics are computed, not with every command
    import numpy as np

MAX_BUCKETS = 10


class Bucket(BaseModel):
    count: int
    left: float
    right: float


class Distribution(BaseModel):
    """Summary of one per-example quantity (tokens, messages)."""

    sum: int = 0
    min: float = 0
    max: float = 0
    mean: float = 0
    median: float = 0
    p5: float = 0
    p95: float = 0
    buckets: list[Bucket] = []

    @classmethod
    def of(cls, values: Sequence[int]) -> Distribution:
        if not values:
            return cls()
        import numpy as np

        array = np.asarray(values, dtype=np.int64)
        low, high = int(array.min()), int(array.max())
        p5, median, p95 = np.percentile(array, [5, 50, 95])
        return cls(
            sum=int(array.sum()),
            min=low,
            max=high,
            mean=float(array.mean()),
            median=float(median),
            p5=float(p5),
            p95=float(p95),
            buckets=equal_width_buckets(array, low, high),
        )


def equal_width_buckets(values: np.ndarray, low: int, high: int) -> list[Bucket]:
    """Up to MAX_BUCKETS buckets of equal width from ``low`` to ``high`` (the last one closed).

    Integer values spanning fewer than MAX_BUCKETS numbers get one bucket per number's width,
    so no bucket is empty by construction.
    """
    if low == high:
        return [Bucket(count=len(values), left=low, right=high)]
    import numpy as np

    bins = min(MAX_BUCKETS, high - low + 1)
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    return [
        Bucket(count=int(count), left=float(left), right=float(right))
        for count, left, right in zip(counts, edges[:-1], edges[1:], strict=True)
    ]


class DatasetStats(BaseModel):
    """What a tuning job on this dataset will process: sizes, tokens, steps, distributions."""

    example_count: int
    total_characters: int  # all text of every example, once
    billable_characters: int  # total_characters × epochs
    total_tokens: int  # input + output tokens of every example, before truncation
    billable_tokens: int  # tokens trained: each example truncated to max_length, × epochs
    step_count: int  # ceil(examples / batch_size) × epochs
    epochs: int
    batch_size: int
    max_length: int | None = None
    truncated_example_indices: list[int] = []
    media: dict[str, int] = {}  # media parts per kind (image, document, audio)
    media_tokens: int = 0  # of the input tokens, those the media cost (0: not counted)
    input_tokens: Distribution  # system + user side, with template markup
    output_tokens: Distribution  # model side (chosen response for preference examples)
    messages_per_example: Distribution

    def to_vertex(self) -> dict:
        """Vertex's ``supervisedTuningDataStats`` JSON (camelCase)."""
        return {
            "tuningDatasetExampleCount": self.example_count,
            "totalTuningCharacterCount": self.total_characters,
            "totalBillableCharacterCount": self.billable_characters,
            "totalBillableTokenCount": self.billable_tokens,
            "tuningStepCount": self.step_count,
            "totalTruncatedExampleCount": len(self.truncated_example_indices),
            "truncatedExampleIndices": list(self.truncated_example_indices),
            "userInputTokenDistribution": self.input_tokens.model_dump(),
            "userOutputTokenDistribution": self.output_tokens.model_dump(),
            "userMessagePerExampleDistribution": self.messages_per_example.model_dump(),
        }


def _conversation_characters(conversation: Conversation) -> int:
    return len(conversation.system or "") + sum(len(turn.text) for turn in conversation.turns)


def _conversation_messages(conversation: Conversation) -> int:
    return (1 if conversation.system else 0) + len(conversation.turns)


def characters(example: Example) -> int:
    """Characters of all the example's text (for a preference example, both responses)."""
    if isinstance(example, PreferenceExample):
        prompt = _conversation_characters(example.prompt)
        return prompt + len(example.chosen) + len(example.rejected)
    return _conversation_characters(example)


def message_count(example: Example) -> int:
    """Messages as the model sees them: the system message, the turns (and one response)."""
    if isinstance(example, PreferenceExample):
        return _conversation_messages(example.prompt) + 1
    return _conversation_messages(example)


def compute_stats(
    examples: Sequence[Example],
    tokenizer,
    *,
    epochs: int = 1,
    batch_size: int = 1,
    max_length: int | None = None,
    token_counts: Sequence[tuple[int, int]] | None = None,
    media_tokens: int = 0,
) -> DatasetStats:
    """Statistics of ``examples`` as tuned with ``tokenizer``'s chat template.

    ``token_counts`` (a validation report's, one per example) saves counting them again;
    ``media_tokens``, the report's count of what the media cost, counted with the model's
    processor."""
    if epochs < 1 or batch_size < 1:
        raise InvalidArgument(
            f"epochs and batch_size must be at least 1 (got {epochs}, {batch_size})"
        )
    input_counts: list[int] = []
    output_counts: list[int] = []
    trained_tokens = 0
    truncated: list[int] = []
    if token_counts is None or len(token_counts) != len(examples):
        token_counts = [count_tokens(example, tokenizer) for example in examples]
    for index, (input_tokens, output_tokens) in enumerate(token_counts):
        input_counts.append(input_tokens)
        output_counts.append(output_tokens)
        total = input_tokens + output_tokens
        if max_length is not None and total > max_length:
            truncated.append(index)
            total = max_length
        trained_tokens += total
    total_characters = sum(map(characters, examples))
    return DatasetStats(
        example_count=len(examples),
        total_characters=total_characters,
        billable_characters=total_characters * epochs,
        total_tokens=sum(input_counts) + sum(output_counts),
        billable_tokens=trained_tokens * epochs,
        step_count=math.ceil(len(examples) / batch_size) * epochs,
        epochs=epochs,
        batch_size=batch_size,
        max_length=max_length,
        truncated_example_indices=truncated,
        media=media_counts(examples),
        media_tokens=media_tokens,
        input_tokens=Distribution.of(input_counts),
        output_tokens=Distribution.of(output_counts),
        messages_per_example=Distribution.of([message_count(e) for e in examples]),
    )

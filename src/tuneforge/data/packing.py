"""Packing tokenized examples into rows without attention or loss crossing example boundaries.

Each example keeps its own position ids (restarting at 0). Given ``position_ids`` and no
attention mask, transformers builds a block-diagonal causal mask from them (and flash
attention uses them as sequence boundaries), so a token never attends to another example.
The first token of every example carries no label, so no loss is computed across a boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tuneforge.data.tokenize import IGNORE_INDEX, TokenizedExample


@dataclass(slots=True)
class PackedRow:
    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    position_ids: list[int] = field(default_factory=list)
    seq_lengths: list[int] = field(default_factory=list)  # of the examples in this row, in order

    def append(self, example: TokenizedExample) -> None:
        length = len(example.input_ids)
        self.input_ids += example.input_ids
        self.labels += [IGNORE_INDEX, *example.labels[1:]]
        self.position_ids += range(length)
        self.seq_lengths.append(length)

    def pad_to(self, length: int, pad_id: int) -> None:
        extra = length - len(self.input_ids)
        self.input_ids += [pad_id] * extra
        self.labels += [IGNORE_INDEX] * extra
        self.position_ids += range(extra)  # a segment of its own: attends to nothing real
        self.seq_lengths.append(extra)


def pack_examples(
    examples: Sequence[TokenizedExample], row_length: int, pad_id: int | None = None
) -> list[PackedRow]:
    """Pack examples into rows of at most ``row_length`` tokens, best fit decreasing.

    A row's ``seq_lengths`` is what TRL's padding-free collator reads to restart position ids.

    Examples longer than a row are cut to it. With ``pad_id``, every row is padded to exactly
    ``row_length``.
    """
    rows: list[PackedRow] = []
    space: list[int] = []
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids), reverse=True)
    for index in order:
        example = examples[index]
        if len(example.input_ids) > row_length:
            example = TokenizedExample(
                example.input_ids[:row_length], example.labels[:row_length], truncated=True
            )
        size = len(example.input_ids)
        fits = [r for r, free in enumerate(space) if free >= size]
        if fits:
            best = min(fits, key=lambda r: space[r])
        else:
            rows.append(PackedRow())
            space.append(row_length)
            best = len(rows) - 1
        rows[best].append(example)
        space[best] -= size
    if pad_id is not None:
        for row in rows:
            row.pad_to(row_length, pad_id)
    return rows

"""Attention for padding-free batches without flash-attention: SDPA run per example.

A padding-free batch is one row of concatenated examples. flash-attention takes their
boundaries directly; plain SDPA needs a block-diagonal mask over the whole row and so computes
(sum of lengths)^2 scores, most of them masked away. Running causal SDPA on each example's
segment computes only sum(length^2), which is what makes padding-free batches fast on a CPU
(benchmarks/train_throughput.py). transformers has no such kernel, hence these few lines.

Registered under PACKED_SDPA. It is not given a mask function, so transformers builds no mask
for it; the boundaries come from the collator's ``cu_seq_lens_q`` or, failing that, from where
``position_ids`` restart at 0.
"""

from __future__ import annotations

import itertools

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

PACKED_SDPA = "sdpa_packed"


def _segments(kwargs: dict, length: int) -> list[tuple[int, int]] | None:
    bounds = kwargs.get("cu_seq_lens_q")
    if bounds is not None:
        edges = bounds.tolist()
    elif (position_ids := kwargs.get("position_ids")) is not None:
        starts = (position_ids[0] == 0).nonzero().flatten().tolist()
        edges = [*starts, length]
    else:
        return None
    pairs = [(start, end) for start, end in itertools.pairwise(edges) if end > start]
    return pairs if len(pairs) > 1 else None


def packed_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    segments = None
    if attention_mask is None and query.shape[0] == 1 and query.shape[2] == key.shape[2]:
        segments = _segments(kwargs, query.shape[2])
    if segments is None:  # one sequence, or a padded batch: plain causal SDPA
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    outputs = [
        sdpa_attention_forward(
            module,
            query[:, :, start:end],
            key[:, :, start:end],
            value[:, :, start:end],
            None,
            dropout=dropout,
            scaling=scaling,
            is_causal=True,
        )[0]
        for start, end in segments
    ]
    return torch.cat(outputs, dim=1), None  # (batch, tokens, heads, head_dim)


AttentionInterface.register(PACKED_SDPA, packed_sdpa_attention)

"""A reward model's scores of conversations: each (ending with the model's turn) is rendered as
the reward method trained on it, right-padded as in training, and the score head reads each row
at its last real token. One home for the scoring that ``POST /v1/score`` and reinforcement
tuning against a reward model both do."""

from __future__ import annotations

from typing import Any

import torch

from tuneforge.data.records import Conversation
from tuneforge.data.tokenize import tokenize_conversation

MAX_BATCH = 16  # conversations scored in one forward pass


def score_conversations(
    model: Any, tokenizer: Any, conversations: list[Conversation], *, max_length: int
) -> list[float]:
    rows = [tokenize_conversation(c, tokenizer, max_length).input_ids for c in conversations]
    scores: list[float] = []
    for start in range(0, len(rows), MAX_BATCH):
        scores += _forward(model, tokenizer.pad_token_id, rows[start : start + MAX_BATCH])
    return scores


def _forward(model: Any, pad: int, rows: list[list[int]]) -> list[float]:
    width = max(map(len, rows))
    device = next(model.parameters()).device
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=mask).logits
    return [float(x) for x in logits[:, 0].float().cpu()]


def longest_input(model: Any) -> int:
    """The most tokens the model reads (its position embeddings), 2048 when it does not say."""
    return getattr(model.config, "max_position_embeddings", None) or 2048

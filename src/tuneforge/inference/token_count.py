"""A prompt's tokens as the served model sees them, without loading the model: the same
tokenizer and chat template that generation uses, so a count equals the ``prompt_tokens`` of
an answer to the same prompt."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from tuneforge.data.records import Conversation
from tuneforge.data.tokenize import prompt_token_runs, token_bytes
from tuneforge.inference.types import ModelTarget
from tuneforge.models.loading import load_tokenizer


@dataclass(frozen=True)
class TurnTokens:
    role: str  # "user" or "model"
    ids: list[int]
    pieces: list[bytes]  # each token's text, as UTF-8 bytes


def prompt_tokens(target: ModelTarget, prompt: Conversation) -> list[TurnTokens]:
    """One entry per turn of ``prompt``; see ``prompt_token_runs`` for where markup goes."""
    tokenizer = _tokenizer(target.tokenizer_source)
    runs = prompt_token_runs(prompt, tokenizer)
    return [
        TurnTokens(turn.role, ids, token_bytes(tokenizer, ids))
        for turn, ids in zip(prompt.turns, runs, strict=True)
    ]


@lru_cache(maxsize=8)
def _tokenizer(source: str):
    return load_tokenizer(source)

"""A prompt's tokens as the served model sees them, without loading the model: the same
tokenizer and chat template that generation uses, so a count equals the ``prompt_tokens`` of
an answer to the same prompt."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from tuneforge.data.media import NO_LIMITS, Media
from tuneforge.data.media_tokenize import MediaEncoder, audio_window, decode_media, sampling_rate
from tuneforge.data.records import Conversation
from tuneforge.data.tokenize import prompt_token_runs, token_bytes
from tuneforge.errors import InvalidArgument
from tuneforge.inference.types import ModelTarget
from tuneforge.models.loading import load_processor, load_tokenizer


@dataclass(frozen=True)
class TurnTokens:
    role: str  # "user" or "model"
    ids: list[int]
    pieces: list[bytes]  # each token's text, as UTF-8 bytes


def prompt_tokens(target: ModelTarget, prompt: Conversation) -> list[TurnTokens]:
    """One entry per turn of ``prompt``; see ``prompt_token_runs`` for where markup goes. A
    prompt with media is counted through the model's processor, each part as the run of tokens
    its placeholder expands to (the service refused media a model cannot read)."""
    if prompt.media:
        processor = _processor(target.base_source)
        tokenizer = processor.tokenizer
        decoded = decode_media(
            prompt, _resolved_bytes, NO_LIMITS, sampling_rate(processor), audio_window(processor)
        )
        runs = MediaEncoder(processor).turn_runs(prompt, decoded)
    else:
        tokenizer = _tokenizer(target.tokenizer_source)
        runs = prompt_token_runs(prompt, tokenizer)
    return [
        TurnTokens(turn.role, ids, token_bytes(tokenizer, ids))
        for turn, ids in zip(prompt.turns, runs, strict=True)
    ]


@lru_cache(maxsize=8)
def _tokenizer(source: str):
    return load_tokenizer(source)


@lru_cache(maxsize=4)
def _processor(source: str):
    return load_processor(source)


def _resolved_bytes(media: Media) -> bytes:
    if media.data is None:  # the service reads every file part before counting
        raise InvalidArgument(f"the file {media.uri!r} was not read", media.path)
    return media.data

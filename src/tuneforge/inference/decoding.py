"""Decoding helpers both generation paths share: left padding, output budgets, seeding, and
turning generated token ids into a :class:`Completion`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from tuneforge.errors import InvalidArgument
from tuneforge.inference.model_cache import LoadedModel
from tuneforge.inference.row_controls import DECODE_KWARGS
from tuneforge.inference.types import Completion, GenerationParams, cut_at_stop

# transformers samples from torch's global generator. Sampled generations take turns with it, so
# a seeded request is not disturbed by another model's sampling on another thread.
RNG_LOCK = threading.Lock()


def to_completion(
    tokenizer: Any, tokens: list[int], eos_ids: set[int], params: GenerationParams
) -> Completion:
    ended = next((i for i, token in enumerate(tokens) if token in eos_ids), None)
    if ended is not None:
        tokens = tokens[:ended]
    text, stopped = cut_at_stop(tokenizer.decode(tokens, **DECODE_KWARGS), params.stop)
    finish = "stop" if ended is not None or stopped else "length"
    return Completion(text=text, finish_reason=finish, output_tokens=len(tokens))


def max_new_tokens(loaded: LoadedModel, encoded: list[list[int]], params: GenerationParams) -> int:
    """The requested output length, cut to what the model's context leaves after the prompt."""
    longest = max(len(ids) for ids in encoded)
    context = loaded.context_length
    if context is None:
        return params.max_output_tokens
    if longest >= context:
        raise InvalidArgument(
            f"the prompt has {longest} tokens; the model reads at most {context}", "contents"
        )
    return min(params.max_output_tokens, context - longest)


def generation_kwargs(
    loaded: LoadedModel, params: GenerationParams, max_new: int, copies: int
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new,
        "eos_token_id": loaded.eos_ids,
        "pad_token_id": loaded.tokenizer.pad_token_id,
        "do_sample": params.sampling,
        "num_return_sequences": copies,
    }
    if params.sampling:
        kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
    return kwargs


def left_pad(encoded: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, ids in enumerate(encoded):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids) :] = 1
    return input_ids, attention_mask


@contextmanager
def seeded(params: GenerationParams, device: str) -> Iterator[None]:
    if not params.sampling:
        yield
        return
    with RNG_LOCK:
        if params.seed is None:
            yield
            return
        devices = [torch.device(device)] if device.startswith("cuda") else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(params.seed)
            yield

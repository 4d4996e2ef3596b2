"""Decoding helpers both generation paths share: left padding, output budgets, seeding, log
probabilities, and turning generated token ids into a :class:`Completion`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from transformers import LogitsProcessorList

from tuneforge.data.tokenize import token_bytes
from tuneforge.errors import InvalidArgument
from tuneforge.inference.model_cache import LoadedModel
from tuneforge.inference.row_controls import DECODE_KWARGS
from tuneforge.inference.structured import Constraint, GrammarConstraint
from tuneforge.inference.types import (
    Completion,
    GenerationParams,
    TokenChoice,
    TokenLogprob,
    cut_at_stop,
)

# transformers samples from torch's global generator. Sampled generations take turns with it, so
# a seeded request is not disturbed by another model's sampling on another thread.
RNG_LOCK = threading.Lock()


def to_completion(
    tokenizer: Any,
    tokens: list[int],
    eos_ids: set[int],
    params: GenerationParams,
    logprobs: list[TokenLogprob] | None = None,
) -> Completion:
    """The completion of generated ``tokens`` (EOS and what follows cut off); ``logprobs``, one
    per generated token, are cut to the same tokens."""
    ended = next((i for i, token in enumerate(tokens) if token in eos_ids), None)
    if ended is not None:
        tokens = tokens[:ended]
    text, stopped = cut_at_stop(tokenizer.decode(tokens, **DECODE_KWARGS), params.stop)
    finish = "stop" if ended is not None or stopped else "length"
    kept = logprobs[: len(tokens)] if logprobs is not None else None
    return Completion(text=text, finish_reason=finish, output_tokens=len(tokens), logprobs=kept)


class LogprobRecorder:
    """A logits processor that changes nothing and records, at each step, every row's log
    probabilities: of the token it went on to choose, and the ``top`` likeliest.

    transformers runs custom processors before sampling's warpers, so these are the model's
    probabilities whatever the temperature or top-p (after any processor the model's own
    generation config adds, such as a repetition penalty). Only one step's full distribution is held
    at a time (the chosen token is known at the next step), not a vocabulary-wide row per token.
    """

    def __init__(self, top: int) -> None:
        self.top = top
        self._previous: torch.Tensor | None = None  # the last step's log-softmax
        self._chosen: list[torch.Tensor] = []  # per step: (rows,)
        self._top_values: list[torch.Tensor] = []  # per step: (rows, top)
        self._top_ids: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        if self._previous is not None:
            self._take_chosen(input_ids[:, -1])
        log_probs = torch.log_softmax(scores.float(), dim=-1)
        self._previous = log_probs
        if self.top:
            values, ids = log_probs.topk(self.top, dim=-1)
            self._top_values.append(values.cpu())
            self._top_ids.append(ids.cpu())
        return scores

    def _take_chosen(self, chosen: torch.Tensor) -> None:
        assert self._previous is not None
        picked = self._previous.gather(1, chosen.unsqueeze(1).to(self._previous.device))
        self._chosen.append(picked.squeeze(1).cpu())
        self._previous = None

    def rows(self, generated: list[list[int]], tokenizer: Any) -> list[list[TokenLogprob]]:
        """Each row's log probabilities, once ``generate`` has returned ``generated`` (each
        row's new tokens): the last step's chosen token is read from there."""
        if self._previous is not None:
            last = [row[len(self._chosen)] for row in generated]
            self._take_chosen(torch.tensor(last, dtype=torch.long))
        texts: dict[int, tuple[str, bytes]] = {}

        def choice(token_id: int, logprob: float) -> TokenChoice:
            if token_id not in texts:
                raw = token_bytes(tokenizer, [token_id])[0]
                texts[token_id] = (tokenizer.decode([token_id]), raw)
            text, raw = texts[token_id]
            return TokenChoice(token_id, text, logprob, raw)

        rows = []
        for row, tokens in enumerate(generated):
            steps = min(len(tokens), len(self._chosen))
            rows.append(
                [
                    TokenLogprob(
                        choice(tokens[step], float(self._chosen[step][row])),
                        [
                            choice(int(token_id), float(value))
                            for token_id, value in zip(
                                self._top_ids[step][row].tolist(),
                                self._top_values[step][row].tolist(),
                                strict=True,
                            )
                        ]
                        if self.top
                        else [],
                    )
                    for step in range(steps)
                ]
            )
        return rows


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


def logits_processors(
    tokenizer: Any, constraint: Constraint | None, recorder: LogprobRecorder | None = None
) -> LogitsProcessorList:
    """What a request adds to transformers' processing of each step's logits: the log
    probability recorder first (it must see the model's own scores), then its grammar's
    constraint (``tool_use.row_constraint``: a JSON schema's, or the calls')."""
    processors: list[Any] = [recorder] if recorder else []
    if constraint is not None:
        processors.append(GrammarConstraint(tokenizer, constraint))
    return LogitsProcessorList(processors)


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

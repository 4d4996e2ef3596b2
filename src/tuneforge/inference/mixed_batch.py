"""Mixed batches on transformers: requests for different adapters of one base, for the base
itself, and with different sampling parameters, in one ``model.generate`` call.

Each request is checked, tokenized and measured on its own first, so a bad or over-long prompt
fails only its own request. The rest are grouped by the model they run on; inside a group every
row runs with its own adapter (or none) and gets its own temperature, top-k, top-p, stop
sequences and output length (``row_controls``). Each LoRA layer adds every row's own adapter
delta: for plain LoRA adapters in two batched products on the adapters' stacked weights
(``gathered_lora.py``, BGMV), for a batch with any other adapter through PEFT's
``adapter_names``, which loops over the batch's adapters in every layer
(``LoadedModel.mixed`` chooses). What stays apart:

- a seeded sampled request runs alone: what a row samples depends on the rows beside it, and a
  seed promises the same output as the same request alone;
- requests for structured output or tool calls share a batch only with requests for the same
  model, grammar and parameters, on the plain path (one grammar constrains every row);
- an adapter PEFT cannot mix (DoRA and the like, ``model_cache.mixable``) runs in batches of
  its own adapter;
- a group whose rows all share one target and one set of parameters takes the plain path
  (``set_adapter``, transformers' own warpers), as before mixed batches existed.

Why a finished row is not replaced mid-generation (continuous batching): transformers 5's
continuous batching (``generate_batch`` / ``init_continuous_batching``) packs every request's
tokens into one row of a paged cache, while the mixed-adapter forward (ours and PEFT's) picks
each request's adapter by batch row, so the two do not combine; it also takes one generation
config for all requests. A finished row therefore stays padded until the longest row of its
batch ends, and the micro-batcher (``batching.py``) starts the next batch as soon as one ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from tuneforge.inference.decoding import LogprobRecorder, left_pad, max_new_tokens, to_completion
from tuneforge.inference.media_prompt import encode_prompt
from tuneforge.inference.model_cache import LoadedModel, ModelCache, mixable
from tuneforge.inference.row_controls import PerRowSampling, RowBudget, StopOnText
from tuneforge.inference.structured import Constraint
from tuneforge.inference.tool_use import read_result, row_constraint
from tuneforge.inference.types import (
    GenerationParams,
    GenerationResult,
    ModelTarget,
    Outcome,
    Request,
    TokenLogprob,
    check_prompt,
)

# The plain path: (loaded model, target, prompts' token ids, params, the rows' constraint) -> one
# result per prompt.
PlainGenerate = Callable[
    [LoadedModel, ModelTarget, list[list[int]], GenerationParams, Constraint | None, dict],
    list[GenerationResult],
]


@dataclass(frozen=True)
class _Row:
    index: int  # position in the requests
    request: Request
    loaded: LoadedModel
    ids: list[int]
    max_new: int  # the request's output budget, cut to what the context leaves
    constraint: Constraint | None  # what holds its decoding (tool_use.row_constraint)
    media_inputs: dict  # a prompt with media: its towers' inputs (inference/media_prompt.py)

    @property
    def params(self) -> GenerationParams:
        return self.request.params

    @property
    def adapter(self) -> Path | None:
        return self.request.target.adapter_path


class MixedBatcher:
    """Runs one list of requests as few ``generate`` calls as the rules above allow."""

    def __init__(self, cache: ModelCache, device: str, plain: PlainGenerate) -> None:
        self.cache = cache
        self.device = device
        self.plain = plain

    def run(self, requests: Sequence[Request]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(requests)
        rows: list[_Row] = []
        for index, request in enumerate(requests):
            try:
                rows.append(self._prepare(index, request))
            except Exception as err:  # this request's own problem: the others go on
                outcomes[index] = err
        for group in self._groups(rows):
            try:
                results = self._generate(group)
            except Exception as err:  # a failure of the batch itself reaches each of its rows
                results = [err] * len(group)
            for row, result in zip(group, results, strict=True):
                prompt, tokenizer = row.request.prompt, row.loaded.tokenizer
                outcomes[row.index] = (
                    result
                    if isinstance(result, Exception)
                    else read_result(tokenizer, prompt, result)
                )
        return [outcome for outcome in outcomes if outcome is not None]

    def _prepare(self, index: int, request: Request) -> _Row:
        check_prompt(request.prompt)
        loaded = self.cache.get(request.target)
        ids, media_inputs = encode_prompt(loaded, request.prompt)
        max_new = max_new_tokens(loaded, [ids], request.params)
        constraint = row_constraint(loaded.tokenizer, request.prompt, request.params)
        return _Row(index, request, loaded, ids, max_new, constraint, media_inputs)

    @staticmethod
    def _groups(rows: list[_Row]) -> list[list[_Row]]:
        groups: dict[object, list[_Row]] = {}
        for row in rows:
            params, adapter = row.params, row.adapter
            if (params.sampling and params.seed is not None) or row.media_inputs:
                # A prompt with media runs alone: its towers' inputs are its own.
                key: object = ("alone", row.index)
            elif row.constraint is not None:  # one grammar for every row: the plain path
                key = (id(row.loaded), "constraint", row.request.target, params, row.constraint)
            elif adapter is not None and not mixable(adapter):
                key = (id(row.loaded), "adapter", adapter)
            else:
                key = (id(row.loaded), "mixed")
            groups.setdefault(key, []).append(row)
        return list(groups.values())

    def _generate(self, group: list[_Row]) -> list[GenerationResult]:
        first = group[0]
        target, params = first.request.target, first.params
        if all(row.request.target == target and row.params == params for row in group):
            encoded = [row.ids for row in group]
            return self.plain(
                first.loaded, target, encoded, params, first.constraint, first.media_inputs
            )
        return self._generate_mixed(first.loaded, group)

    def _generate_mixed(self, loaded: LoadedModel, group: list[_Row]) -> list[GenerationResult]:
        # A sampled request with n candidates takes n rows; greedy candidates would all be equal.
        copies = [row.params.n if row.params.sampling else 1 for row in group]
        expanded = [row for row, count in zip(group, copies, strict=True) for _ in range(count)]
        pad_id = loaded.tokenizer.pad_token_id
        input_ids, attention_mask = left_pad([row.ids for row in expanded], pad_id)
        prompt_length = input_ids.shape[1]
        budgets = [row.max_new for row in expanded]
        criteria: list[StoppingCriteria] = [RowBudget(budgets, prompt_length)]
        stop = None
        if any(row.params.stop for row in expanded):
            stops = [row.params.stop for row in expanded]
            stop = StopOnText(loaded.tokenizer, stops, prompt_length)
            criteria.append(stop)
        asked = [row.params.logprobs for row in expanded if row.params.logprobs is not None]
        recorder = LogprobRecorder(max(asked)) if asked else None
        processors: list[Any] = [recorder] if recorder else []  # before any row's sampling
        kwargs: dict[str, object] = {
            "max_new_tokens": max(budgets),
            "eos_token_id": loaded.eos_ids,
            "pad_token_id": pad_id,
            "stopping_criteria": StoppingCriteriaList(criteria),
            "do_sample": False,
        }
        if any(row.params.sampling for row in expanded):
            # transformers' warpers are left neutral: PerRowSampling does each row's own.
            sampling = PerRowSampling(
                [row.params.temperature for row in expanded],
                [row.params.top_k for row in expanded],
                [row.params.top_p for row in expanded],
                self.device,
            )
            processors.append(sampling)
            kwargs.update(do_sample=True, temperature=1.0, top_k=0, top_p=1.0)
        kwargs["logits_processor"] = LogitsProcessorList(processors)
        with self._model_for(loaded, [row.adapter for row in expanded], kwargs) as model:
            output = model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention_mask.to(self.device),
                **kwargs,
            )
        generated = output[:, prompt_length:].tolist()
        logprobs = recorder.rows(generated, loaded.tokenizer) if recorder else None
        eos_ids = set(loaded.eos_ids)
        results, position = [], 0
        for row, count in zip(group, copies, strict=True):
            completions = []
            for offset in range(position, position + count):
                end = stop.stopped_at.get(offset, row.max_new) if stop else row.max_new
                row_logprobs = _own_logprobs(logprobs, offset, end, row.params.logprobs)
                completions.append(
                    to_completion(
                        loaded.tokenizer, generated[offset][:end], eos_ids, row.params, row_logprobs
                    )
                )
            position += count
            if not row.params.sampling:
                completions *= row.params.n
            results.append(GenerationResult(completions=completions, prompt_tokens=len(row.ids)))
        return results

    @staticmethod
    @contextmanager
    def _model_for(
        loaded: LoadedModel, adapters: list[Path | None], kwargs: dict[str, object]
    ) -> Iterator[Any]:
        """The model, held for one generation: with the one adapter all rows share (or none),
        else ready to run each row with its own adapter (``LoadedModel.mixed``, which may add
        PEFT's ``adapter_names`` to ``kwargs``)."""
        if len(set(adapters)) == 1:
            with loaded.using(adapters[0]) as model, torch.inference_mode():
                yield model
            return
        with loaded.mixed(adapters) as (model, generate_kwargs), torch.inference_mode():
            kwargs.update(generate_kwargs)
            yield model


def _own_logprobs(
    logprobs: list[list[TokenLogprob]] | None, offset: int, end: int, asked: int | None
) -> list[TokenLogprob] | None:
    """A row's log probabilities as it asked for them: none, or its own number of alternatives
    (the batch recorded the most any row asked for)."""
    if logprobs is None or asked is None:
        return None
    return [replace(token, top=token.top[:asked]) for token in logprobs[offset][:end]]

"""Generation with transformers' ``model.generate``: left-padded batches, LoRA adapters per request.

Runs anywhere torch runs (the CPU test machines included). Models come from a
:class:`~tuneforge.inference.model_cache.ModelCache`, so tuned models of one base share it.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from tuneforge.data.records import Conversation
from tuneforge.data.tokenize import prompt_ids
from tuneforge.engine.hardware import detect_hardware
from tuneforge.errors import InvalidArgument
from tuneforge.inference.model_cache import LoadedModel, ModelCache
from tuneforge.inference.types import (
    BatchBackend,
    Completion,
    FinishReason,
    GenerationParams,
    GenerationResult,
    ModelTarget,
    TextStream,
    check_prompt,
    cut_at_stop,
    held_back,
)

DECODE_KWARGS = {"skip_special_tokens": True}

# transformers samples from torch's global generator. Sampled generations take turns with it, so
# a seeded request is not disturbed by another model's sampling on another thread.
_RNG_LOCK = threading.Lock()


class StopOnText(StoppingCriteria):
    """Ends each row once its generated text contains a stop sequence; remembers where."""

    def __init__(self, tokenizer: Any, stop: tuple[str, ...], prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.stop = stop
        self.prompt_length = prompt_length
        # A character is at most 4 bytes and a byte-level token at least one byte, so a stop
        # sequence that ends in the newest token starts within this many tokens of the end.
        self.window = 4 * max(len(s) for s in stop) + 2
        self.stopped_at: dict[int, int] = {}  # row -> generated tokens when it stopped

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        length = input_ids.shape[1]
        start = max(self.prompt_length, length - self.window)
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for row in range(input_ids.shape[0]):
            if row not in self.stopped_at:
                tail = self.tokenizer.decode(input_ids[row, start:].tolist(), **DECODE_KWARGS)
                if any(s in tail for s in self.stop):
                    self.stopped_at[row] = length - self.prompt_length
            done[row] = row in self.stopped_at
        return done


class Cancelled(StoppingCriteria):
    """Ends every row once the event is set (a stream whose reader went away)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


class TransformersBackend(BatchBackend):
    """An :class:`~tuneforge.inference.types.InferenceBackend` on transformers and peft."""

    def __init__(
        self, memory_budget_bytes: int, device: str | None = None, max_adapters_per_model: int = 64
    ) -> None:
        hardware = detect_hardware()
        self.device = device or hardware.device
        on_gpu = self.device.startswith("cuda") and hardware.device == "cuda"
        self._cache = ModelCache(
            memory_budget_bytes,
            device=self.device,
            dtype=hardware.dtype if on_gpu else torch.float32,
            attn_implementation=hardware.padded_attention if on_gpu else "sdpa",
            max_adapters_per_model=max_adapters_per_model,
        )

    def loaded_bases(self) -> list[str]:
        """Sources of the models in memory (bases and full fine-tunes), least recent first."""
        return self._cache.loaded()

    def load_counts(self) -> dict[str, int]:
        """How many times each model source was loaded (evicted ones included)."""
        return dict(self._cache.load_counts)

    @property
    def evictions(self) -> int:
        return self._cache.evictions

    def _generate_checked(
        self, target: ModelTarget, prompts: list[Conversation], params: GenerationParams
    ) -> list[GenerationResult]:
        loaded = self._cache.get(target)
        encoded = [prompt_ids(prompt, loaded.tokenizer) for prompt in prompts]
        if params.sampling and params.seed is not None:
            # What a seeded row samples depends on the rows beside it: run each alone, so a
            # batched request gets what the same request alone would.
            return [self._generate(loaded, target, [ids], params)[0] for ids in encoded]
        return self._generate(loaded, target, encoded, params)

    def stream(
        self, target: ModelTarget, prompt: Conversation, params: GenerationParams
    ) -> TextStream:
        check_prompt(prompt)
        loaded = self._cache.get(target)
        ids = prompt_ids(prompt, loaded.tokenizer)
        max_new = _max_new_tokens(loaded, [ids], params)
        streamer = TextIteratorStreamer(loaded.tokenizer, skip_prompt=True, **DECODE_KWARGS)
        cancel = threading.Event()
        criteria: list[StoppingCriteria] = [Cancelled(cancel)]
        stop = StopOnText(loaded.tokenizer, params.stop, len(ids)) if params.stop else None
        if stop:
            criteria.append(stop)
        errors: list[BaseException] = []
        outputs: list[torch.Tensor] = []

        def run() -> None:
            try:
                input_ids, attention_mask = _left_pad([ids], loaded.tokenizer.pad_token_id)
                with (
                    loaded.using(target.adapter_path) as model,
                    _seeded(params, self.device),
                    torch.inference_mode(),
                ):
                    output = model.generate(
                        input_ids=input_ids.to(self.device),
                        attention_mask=attention_mask.to(self.device),
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList(criteria),
                        **_generation_kwargs(loaded, params, max_new, copies=1),
                    )
                outputs.append(output[0, len(ids) :].cpu())
            except BaseException as err:  # handed to the reader, which re-raises it
                errors.append(err)
                streamer.end()

        def finish(stopped_at_text: bool) -> tuple[FinishReason, int]:
            """Counted as a whole completion is: tokens up to EOS or the stop sequence."""
            tokens = outputs[0].tolist() if outputs else []
            end = stop.stopped_at.get(0) if stop else None
            completion = _completion(loaded.tokenizer, tokens[:end], set(loaded.eos_ids), params)
            reason = "stop" if stopped_at_text else completion.finish_reason
            return reason, completion.output_tokens

        thread = threading.Thread(target=run, name="tuneforge-stream", daemon=True)
        return TextStream(_deltas(streamer, thread, cancel, errors, params.stop), len(ids), finish)

    def _generate(
        self,
        loaded: LoadedModel,
        target: ModelTarget,
        encoded: list[list[int]],
        params: GenerationParams,
    ) -> list[GenerationResult]:
        tokenizer = loaded.tokenizer
        max_new = _max_new_tokens(loaded, encoded, params)
        # Greedy candidates would all be the same: generate one and repeat it.
        copies = params.n if params.sampling else 1
        input_ids, attention_mask = _left_pad(encoded, tokenizer.pad_token_id)
        prompt_length = input_ids.shape[1]
        stop = StopOnText(tokenizer, params.stop, prompt_length) if params.stop else None
        with (
            loaded.using(target.adapter_path) as model,
            _seeded(params, self.device),
            torch.inference_mode(),
        ):
            output = model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention_mask.to(self.device),
                stopping_criteria=StoppingCriteriaList([stop] if stop else []),
                **_generation_kwargs(loaded, params, max_new, copies),
            )
        rows = output[:, prompt_length:].tolist()
        eos_ids = set(loaded.eos_ids)
        results = []
        for index, ids in enumerate(encoded):
            completions = []
            for row in range(index * copies, (index + 1) * copies):
                end = stop.stopped_at.get(row) if stop else None
                completions.append(_completion(tokenizer, rows[row][:end], eos_ids, params))
            if not params.sampling:
                completions *= params.n
            results.append(GenerationResult(completions=completions, prompt_tokens=len(ids)))
        return results


def _completion(
    tokenizer: Any, tokens: list[int], eos_ids: set[int], params: GenerationParams
) -> Completion:
    ended = next((i for i, token in enumerate(tokens) if token in eos_ids), None)
    if ended is not None:
        tokens = tokens[:ended]
    text, stopped = cut_at_stop(tokenizer.decode(tokens, **DECODE_KWARGS), params.stop)
    finish = "stop" if ended is not None or stopped else "length"
    return Completion(text=text, finish_reason=finish, output_tokens=len(tokens))


def _max_new_tokens(loaded: LoadedModel, encoded: list[list[int]], params: GenerationParams) -> int:
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


def _generation_kwargs(
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


def _left_pad(encoded: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, ids in enumerate(encoded):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids) :] = 1
    return input_ids, attention_mask


@contextmanager
def _seeded(params: GenerationParams, device: str) -> Iterator[None]:
    if not params.sampling:
        yield
        return
    with _RNG_LOCK:
        if params.seed is None:
            yield
            return
        devices = [torch.device(device)] if device.startswith("cuda") else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(params.seed)
            yield


def _deltas(
    streamer: TextIteratorStreamer,
    thread: threading.Thread,
    cancel: threading.Event,
    errors: list[BaseException],
    stop: tuple[str, ...],
) -> Generator[str, None, bool]:
    """The streamer's text, cut at the first stop sequence; generation starts on first read.
    Returns whether it cut the text at a stop sequence."""
    thread.start()
    pending = ""  # text that may be the start of a stop sequence, not yet given out
    try:
        for piece in streamer:
            pending += piece
            text, stopped = cut_at_stop(pending, stop)
            if stopped:
                if text:
                    yield text
                return True
            ready = len(pending) - held_back(pending, stop)
            if ready:
                yield pending[:ready]
                pending = pending[ready:]
        if errors:
            raise errors[0]
        if pending:
            yield pending
        return False
    finally:
        cancel.set()
        thread.join()

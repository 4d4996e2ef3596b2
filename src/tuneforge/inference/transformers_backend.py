"""Generation with transformers' ``model.generate``: left-padded batches, LoRA adapters per request.

Runs anywhere torch runs (the CPU test machines included). Models come from a
:class:`~tuneforge.inference.model_cache.ModelCache`, so tuned models of one base share it.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Hashable, Sequence
from typing import Any

import torch
from transformers import (
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from tuneforge.data.records import Conversation
from tuneforge.engine.hardware import detect_hardware
from tuneforge.inference.decoding import (
    LogprobRecorder,
    generation_kwargs,
    left_pad,
    logits_processors,
    max_new_tokens,
    seeded,
    to_completion,
)
from tuneforge.inference.media_prompt import encode_prompt, on_device
from tuneforge.inference.mixed_batch import MixedBatcher
from tuneforge.inference.model_cache import LoadedModel, ModelCache
from tuneforge.inference.row_controls import DECODE_KWARGS, StopOnText
from tuneforge.inference.structured import Constraint
from tuneforge.inference.tool_use import read_result, row_constraint, stream_calls
from tuneforge.inference.types import (
    BatchBackend,
    FinishReason,
    GenerationParams,
    GenerationResult,
    ModelTarget,
    Outcome,
    Request,
    TextStream,
    check_prompt,
    cut_at_stop,
    held_back,
    refuse_streamed_logprobs,
)
from tuneforge.machine import memory_bytes


class Cancelled(StoppingCriteria):
    """Ends every row once the event is set (a stream whose reader went away)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


# The share of the memory models are served from that the cache of loaded models may hold by
# default: the rest is left to the training runners, the server and the system.
DEFAULT_MEMORY_SHARE = 0.5
# How long after its last generation the inference still counts as serving (keeps its share of
# the CPU's cores): a chat's next message usually comes within it.
SERVING_IDLE_S = 60.0
FALLBACK_MEMORY_BUDGET = 8 << 30  # where the machine does not say how much memory it has


def default_memory_budget(device: str) -> int:
    """Half the memory of ``device``: a GPU's own, or the RAM this process may use."""
    if device.startswith("cuda"):
        total = torch.cuda.get_device_properties(torch.device(device)).total_memory
    else:
        total = memory_bytes() or FALLBACK_MEMORY_BUDGET / DEFAULT_MEMORY_SHARE
    return int(total * DEFAULT_MEMORY_SHARE)


class TransformersBackend(BatchBackend):
    """An :class:`~tuneforge.inference.types.InferenceBackend` on transformers and peft."""

    def __init__(
        self,
        memory_budget_bytes: int | None = None,
        device: str | None = None,
        max_adapters_per_model: int = 64,
    ) -> None:
        """``memory_budget_bytes``: what the cache of loaded models may hold; None: half the
        memory the models live in (:func:`default_memory_budget`)."""
        hardware = detect_hardware()
        self.device = device or hardware.device
        on_gpu = self.device.startswith("cuda") and hardware.device == "cuda"
        if memory_budget_bytes is None:
            memory_budget_bytes = default_memory_budget(self.device if on_gpu else "cpu")
        self._cache = ModelCache(
            memory_budget_bytes,
            device=self.device,
            dtype=hardware.dtype if on_gpu else torch.float32,
            attn_implementation=hardware.padded_attention if on_gpu else "sdpa",
            max_adapters_per_model=max_adapters_per_model,
        )

    def serves_on_cpu(self) -> bool:
        """Whether models on the CPU have generated lately (they then take a share of the
        cores from the training runners; an idle server gives its share back)."""
        return not self.device.startswith("cuda") and self._cache.used_within(SERVING_IDLE_S)

    def reserve_for_training(self, planned: dict[str, int]) -> None:
        """Count the memory training planned on this backend's device (``planned``: bytes per
        device, ``cpu`` or ``cuda:N``) against the cache's budget."""
        device = torch.device(self.device)
        if device.type == "cuda":
            key = f"cuda:{device.index if device.index is not None else 0}"
        else:
            key = "cpu"
        self._cache.reserve(planned.get(key, 0))

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
        tokenizer = loaded.tokenizer
        encoded, media = zip(*(encode_prompt(loaded, prompt) for prompt in prompts), strict=True)
        constraints = [row_constraint(tokenizer, prompt, params) for prompt in prompts]
        seeded_rows = params.sampling and params.seed is not None
        if seeded_rows or len(set(constraints)) > 1 or any(media):
            # What a seeded row samples depends on the rows beside it: run each alone, so a
            # batched request gets what the same request alone would. Rows under different
            # constraints (their prompts offer different tools) run apart too, and prompts
            # with media (their towers' inputs are their own).
            results = [
                self._generate(loaded, target, [ids], params, constraint, inputs)[0]
                for ids, constraint, inputs in zip(encoded, constraints, media, strict=True)
            ]
        else:
            results = self._generate(loaded, target, list(encoded), params, constraints[0])
        return [
            read_result(tokenizer, prompt, result)
            for prompt, result in zip(prompts, results, strict=True)
        ]

    def batch_group(self, target: ModelTarget, params: GenerationParams) -> Hashable:
        """Requests with the same group may share one ``generate_many`` call: every adapter of
        a base and the base itself share one; a full fine-tune is a model of its own."""
        return (target.base_source, target.weights_path)

    def generate_many(self, requests: Sequence[Request]) -> list[Outcome]:
        """Every request's result, or its own error: a bad prompt fails only its request."""
        return MixedBatcher(self._cache, self.device, self._generate).run(requests)

    def stream(
        self, target: ModelTarget, prompt: Conversation, params: GenerationParams
    ) -> TextStream:
        check_prompt(prompt)
        refuse_streamed_logprobs(params)
        loaded = self._cache.get(target)
        ids, media_inputs = encode_prompt(loaded, prompt)
        constraint = row_constraint(loaded.tokenizer, prompt, params)
        max_new = max_new_tokens(loaded, [ids], params)
        streamer = TextIteratorStreamer(loaded.tokenizer, skip_prompt=True, **DECODE_KWARGS)
        cancel = threading.Event()
        criteria: list[StoppingCriteria] = [Cancelled(cancel)]
        stop = StopOnText(loaded.tokenizer, [params.stop], len(ids)) if params.stop else None
        if stop:
            criteria.append(stop)
        errors: list[BaseException] = []
        outputs: list[torch.Tensor] = []

        def run() -> None:
            try:
                input_ids, attention_mask = left_pad([ids], loaded.tokenizer.pad_token_id)
                with (
                    loaded.using(target.adapter_path) as model,
                    seeded(params, self.device),
                    torch.inference_mode(),
                ):
                    output = model.generate(
                        input_ids=input_ids.to(self.device),
                        attention_mask=attention_mask.to(self.device),
                        **on_device(media_inputs, model),
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList(criteria),
                        logits_processor=logits_processors(loaded.tokenizer, constraint),
                        **generation_kwargs(loaded, params, max_new, copies=1),
                    )
                outputs.append(output[0, len(ids) :].cpu())
            except BaseException as err:  # handed to the reader, which re-raises it
                errors.append(err)
                streamer.end()

        def finish(stopped_at_text: bool) -> tuple[FinishReason, int]:
            """Counted as a whole completion is: tokens up to EOS or the stop sequence."""
            tokens = outputs[0].tolist() if outputs else []
            end = stop.stopped_at.get(0) if stop else None
            completion = to_completion(loaded.tokenizer, tokens[:end], set(loaded.eos_ids), params)
            reason = "stop" if stopped_at_text else completion.finish_reason
            return reason, completion.output_tokens

        thread = threading.Thread(target=run, name="tuneforge-stream", daemon=True)
        deltas = _deltas(streamer, thread, cancel, errors, params.stop)
        return stream_calls(loaded.tokenizer, prompt, TextStream(deltas, len(ids), finish))

    def _generate(
        self,
        loaded: LoadedModel,
        target: ModelTarget,
        encoded: list[list[int]],
        params: GenerationParams,
        constraint: Constraint | None = None,
        media_inputs: dict | None = None,
    ) -> list[GenerationResult]:
        """``media_inputs``: the towers' inputs of the one prompt in ``encoded`` (its media)."""
        tokenizer = loaded.tokenizer
        max_new = max_new_tokens(loaded, encoded, params)
        # Greedy candidates would all be the same: generate one and repeat it.
        copies = params.n if params.sampling else 1
        input_ids, attention_mask = left_pad(encoded, tokenizer.pad_token_id)
        prompt_length = input_ids.shape[1]
        rows = len(encoded) * copies  # generate repeats each prompt's row ``copies`` times
        stop = StopOnText(tokenizer, [params.stop] * rows, prompt_length) if params.stop else None
        recorder = LogprobRecorder(params.logprobs) if params.logprobs is not None else None
        with (
            loaded.using(target.adapter_path) as model,
            seeded(params, self.device),
            torch.inference_mode(),
        ):
            output = model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention_mask.to(self.device),
                **on_device(media_inputs or {}, model),
                stopping_criteria=StoppingCriteriaList([stop] if stop else []),
                logits_processor=logits_processors(tokenizer, constraint, recorder),
                **generation_kwargs(loaded, params, max_new, copies),
            )
        generated = output[:, prompt_length:].tolist()
        logprobs = recorder.rows(generated, tokenizer) if recorder else None
        eos_ids = set(loaded.eos_ids)
        results = []
        for index, ids in enumerate(encoded):
            completions = []
            for row in range(index * copies, (index + 1) * copies):
                end = stop.stopped_at.get(row) if stop else None
                row_logprobs = logprobs[row][:end] if logprobs else None
                completions.append(
                    to_completion(tokenizer, generated[row][:end], eos_ids, params, row_logprobs)
                )
            if not params.sampling:
                completions *= params.n
            results.append(GenerationResult(completions=completions, prompt_tokens=len(ids)))
        return results


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

"""Generation with vLLM on a GPU: one engine per base model, LoRA adapters per request.

vLLM is imported only when this backend is made, so tuneforge runs without it. The engine
claims most of the GPU's memory, so one model is held at a time: a request for another base
(or for a full fine-tune, which is a model of its own) replaces the engine. Adapters of the
loaded base are served side by side in one batch through ``LoRARequest``.

vLLM's offline ``LLM`` has no streaming API: :meth:`VLLMBackend.stream` yields the finished
completion as one piece.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Generator, Hashable, Sequence
from pathlib import Path
from typing import Any

from tuneforge.data.records import Conversation
from tuneforge.data.tokenize import prompt_ids
from tuneforge.errors import InvalidArgument, NotFound
from tuneforge.inference.model_cache import ADAPTER_CONFIG, adapter_name
from tuneforge.inference.tool_use import read_result
from tuneforge.inference.types import (
    BatchBackend,
    Completion,
    FinishReason,
    GenerationParams,
    GenerationResult,
    ModelTarget,
    Outcome,
    Request,
    TextStream,
    TokenChoice,
    TokenLogprob,
    check_prompt,
    refuse_streamed_logprobs,
)
from tuneforge.models.loading import load_tokenizer


class VLLMBackend(BatchBackend):
    """An :class:`~tuneforge.inference.types.InferenceBackend` on ``vllm.LLM``."""

    def __init__(
        self,
        max_lora_rank: int = 32,
        max_loras: int = 8,
        gpu_memory_utilization: float = 0.85,
        **engine_kwargs: Any,
    ) -> None:
        try:
            import vllm  # noqa: F401
        except ImportError as err:
            raise InvalidArgument(
                "the vllm inference backend needs the vllm package (pip install vllm) and a GPU",
                "TUNEFORGE_INFERENCE_BACKEND",
            ) from err
        self.max_lora_rank = max_lora_rank
        self.max_loras = max_loras
        self.gpu_memory_utilization = gpu_memory_utilization
        self.engine_kwargs = engine_kwargs
        self._lock = threading.Lock()  # LLM.generate is not safe to call from two threads
        self._llm: Any = None
        self._tokenizer: Any = None
        self._source: str | None = None
        self._lora_ids: dict[str, int] = {}  # adapter name -> vLLM's integer id (1, 2, ...)

    def _generate_checked(
        self, target: ModelTarget, prompts: list[Conversation], params: GenerationParams
    ) -> list[GenerationResult]:
        with self._lock:
            llm, tokenizer = self._engine(target)
            requests = [{"prompt_token_ids": text_prompt_ids(p, tokenizer)} for p in prompts]
            outputs = llm.generate(
                requests,
                self._sampling_params(params, tokenizer),
                lora_request=self._lora_request(target),
                use_tqdm=False,
            )
        eos_ids = {tokenizer.eos_token_id}
        return [
            read_result(tokenizer, prompt, _result(output, eos_ids, params))
            for prompt, output in zip(prompts, outputs, strict=True)
        ]

    def batch_group(self, target: ModelTarget, params: GenerationParams) -> Hashable:
        """The engine a request runs on: adapters of a base and the base itself share one, and
        vLLM takes per-request sampling parameters and LoRA requests."""
        weights = target.weights_path
        return str(weights) if weights is not None else target.base_source

    def generate_many(self, requests: Sequence[Request]) -> list[Outcome]:
        """One ``LLM.generate`` call per engine for every request that passed its own checks;
        a bad or over-long prompt fails only its request, before the engine sees it."""
        outcomes: list[Outcome | None] = [None] * len(requests)
        engines: dict[Hashable, list[int]] = {}
        for index, request in enumerate(requests):
            engines.setdefault(self.batch_group(request.target, request.params), []).append(index)
        for indices in engines.values():
            with self._lock:
                ready, inputs, sampling, loras = [], [], [], []
                for index in indices:
                    request = requests[index]
                    try:
                        check_prompt(request.prompt)
                        llm, tokenizer = self._engine(request.target)
                        ids = text_prompt_ids(request.prompt, tokenizer)
                        _check_length(len(ids), llm.llm_engine.model_config.max_model_len)
                        lora = self._lora_request(request.target)
                        request_sampling = self._sampling_params(request.params, tokenizer)
                    except Exception as err:  # this request's own problem
                        outcomes[index] = err
                        continue
                    ready.append(index)
                    inputs.append({"prompt_token_ids": ids})
                    sampling.append(request_sampling)
                    loras.append(lora)
                if not ready:
                    continue
                try:
                    outputs = llm.generate(inputs, sampling, lora_request=loras, use_tqdm=False)
                except Exception as err:
                    outputs = [err] * len(ready)
            for index, output in zip(ready, outputs, strict=True):
                request = requests[index]
                outcomes[index] = (
                    output
                    if isinstance(output, Exception)
                    else read_result(
                        tokenizer,
                        request.prompt,
                        _result(output, {tokenizer.eos_token_id}, request.params),
                    )
                )
        return [outcome for outcome in outcomes if outcome is not None]

    def stream(
        self, target: ModelTarget, prompt: Conversation, params: GenerationParams
    ) -> TextStream:
        refuse_streamed_logprobs(params)
        result = self.generate(target, prompt, params)
        completion = result.completions[0]

        def deltas() -> Generator[str, None, bool]:
            if completion.text:
                yield completion.text
            return False  # the completion's finish reason already says whether it stopped

        def finish(_stopped: bool) -> tuple[FinishReason, int]:
            stream.tool_calls = list(completion.tool_calls)
            return completion.finish_reason, completion.output_tokens

        stream = TextStream(deltas(), result.prompt_tokens, finish)
        return stream

    def _engine(self, target: ModelTarget) -> tuple[Any, Any]:
        weights = target.weights_path
        source = str(weights) if weights is not None else target.base_source
        if source != self._source:
            from vllm import LLM

            self._release()
            has_tokenizer = weights is not None and (weights / "tokenizer_config.json").is_file()
            tokenizer_source = source if weights is None or has_tokenizer else target.base_source
            self._tokenizer = load_tokenizer(tokenizer_source)
            self._llm = LLM(
                model=source,
                tokenizer=tokenizer_source,
                enable_lora=weights is None,
                max_lora_rank=self.max_lora_rank,
                max_loras=self.max_loras,
                gpu_memory_utilization=self.gpu_memory_utilization,
                **self.engine_kwargs,
            )
            self._source = source
        return self._llm, self._tokenizer

    def _release(self) -> None:
        if self._llm is None:
            return
        self._llm = None
        self._lora_ids.clear()
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _lora_request(self, target: ModelTarget) -> Any:
        path: Path | None = target.adapter_path
        if path is None:
            return None
        if not (path / ADAPTER_CONFIG).is_file():
            raise NotFound(f"no LoRA adapter in {path} ({ADAPTER_CONFIG} is missing)")
        from vllm.lora.request import LoRARequest

        name = adapter_name(path)
        lora_id = self._lora_ids.setdefault(name, len(self._lora_ids) + 1)
        return LoRARequest(name, lora_id, str(path.resolve()))

    def _sampling_params(self, params: GenerationParams, tokenizer: Any) -> Any:
        from vllm import SamplingParams

        if params.json_schema is not None or params.tool_choice == "required":
            # vLLM's own guided decoding moved between releases (guided_decoding, then
            # structured_outputs); until a GPU test pins one, say so rather than ignore it.
            param = "json_schema" if params.json_schema is not None else "tool_choice"
            raise InvalidArgument(
                "structured output and required tool calls are served by the transformers"
                " backend only (TUNEFORGE_INFERENCE_BACKEND=transformers)",
                param,
            )

        return SamplingParams(
            n=params.n if params.sampling else 1,  # greedy candidates are all the same
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,
            max_tokens=params.max_output_tokens,
            stop=list(params.stop) or None,
            stop_token_ids=[tokenizer.eos_token_id],
            seed=params.seed,
            logprobs=params.logprobs,  # vLLM's default: the model's own, before temperature
        )


def _check_length(prompt_tokens: int, context: int) -> None:
    if prompt_tokens >= context:
        raise InvalidArgument(
            f"the prompt has {prompt_tokens} tokens; the model reads at most {context}",
            "contents",
        )


def _result(output: Any, eos_ids: set[int], params: GenerationParams) -> GenerationResult:
    completions = [_completion(candidate, eos_ids, params.logprobs) for candidate in output.outputs]
    if not params.sampling:
        completions *= params.n  # greedy candidates are all the same: generated once
    return GenerationResult(completions=completions, prompt_tokens=len(output.prompt_token_ids))


def _completion(candidate: Any, eos_ids: set[int], top: int | None = None) -> Completion:
    tokens = list(candidate.token_ids)
    if tokens and tokens[-1] in eos_ids:
        tokens.pop()  # counted up to and excluding EOS, as the transformers backend does
    finish = "stop" if candidate.finish_reason == "stop" else "length"
    logprobs = None
    if top is not None and candidate.logprobs is not None:
        # Per token, vLLM gives {token id: Logprob(logprob, rank, decoded_token)}: the top
        # ``top`` and the chosen one.
        logprobs = [
            _token_logprob(token_id, step, top)
            for token_id, step in zip(tokens, candidate.logprobs, strict=False)
        ]
    return Completion(
        text=candidate.text, finish_reason=finish, output_tokens=len(tokens), logprobs=logprobs
    )


def _token_logprob(token_id: int, step: dict[int, Any], top: int) -> TokenLogprob:
    def choice(choice_id: int) -> TokenChoice:
        entry = step[choice_id]
        text = entry.decoded_token or ""
        return TokenChoice(choice_id, text, float(entry.logprob), text.encode())

    ranked = sorted(step, key=lambda choice_id: step[choice_id].rank)[:top]
    return TokenLogprob(choice(token_id), [choice(choice_id) for choice_id in ranked])


def text_prompt_ids(prompt: Conversation, tokenizer) -> list[int]:
    """This backend serves text: a prompt with media is refused, never read without them."""
    if prompt.media:
        raise InvalidArgument(
            "the vLLM backend serves text only; serve media with TUNEFORGE_INFERENCE_BACKEND="
            "transformers",
            prompt.media[0].path,
        )
    return prompt_ids(prompt, tokenizer)

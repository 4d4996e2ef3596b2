"""Micro-batching: single requests that arrive together run as one batched generation.

The first request of a batch group opens a batch and waits up to ``window_s`` (less if the batch
fills) for others to join; it then runs the batch on its own thread and hands every caller its
own result, or its own error. No background thread is needed.

A backend that serves mixed batches (``batch_group`` and ``generate_many``, as both real
backends do) groups requests by the model they run on: the adapters of one base, the base
itself and any sampling parameters share a batch. ``mix_adapters=False`` keeps the older policy,
one batch per (target, params) pair; ``benchmarks/serve_throughput.py`` compares the two.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from tuneforge.data.records import Conversation
from tuneforge.inference.types import (
    GenerationParams,
    GenerationResult,
    InferenceBackend,
    ModelTarget,
    Outcome,
    Request,
    TextStream,
    check_prompt,
)


def batch_group(
    backend: InferenceBackend, target: ModelTarget, params: GenerationParams
) -> Hashable:
    """What requests may share one :func:`generate_many` call on this backend."""
    group = getattr(backend, "batch_group", None)
    return group(target, params) if group is not None else (target, params)


def generate_many(backend: InferenceBackend, requests: Sequence[Request]) -> list[Outcome]:
    """Every request's result or its own error, in mixed batches where the backend has them;
    otherwise one ``generate_batch`` per (target, params), whose failure is each of its rows'."""
    many = getattr(backend, "generate_many", None)
    if many is not None:
        return many(requests)
    outcomes: list[Outcome | None] = [None] * len(requests)
    groups: dict[tuple[ModelTarget, GenerationParams], list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault((request.target, request.params), []).append(index)
    for (target, params), indices in groups.items():
        prompts = [requests[i].prompt for i in indices]
        try:
            results: list[Outcome] = list(backend.generate_batch(target, prompts, params))
        except Exception as err:
            results = [err] * len(indices)
        for index, result in zip(indices, results, strict=True):
            outcomes[index] = result
    return [outcome for outcome in outcomes if outcome is not None]


@dataclass
class _Batch:
    requests: list[Request] = field(default_factory=list)
    futures: list[Future[GenerationResult]] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)


class BatchingBackend:
    """Wraps an :class:`InferenceBackend`; ``generate`` calls are batched across threads."""

    def __init__(
        self,
        inner: InferenceBackend,
        max_batch: int = 16,
        window_s: float = 0.01,
        mix_adapters: bool = True,
    ):
        self.inner = inner
        self.max_batch = max_batch
        self.window_s = window_s
        self.mix_adapters = mix_adapters
        self._open: dict[Hashable, _Batch] = {}
        self._lock = threading.Lock()

    def serves_on_cpu(self) -> bool:
        serves = getattr(self.inner, "serves_on_cpu", None)
        return bool(serves and serves())

    def reserve_for_training(self, planned: dict[str, int]) -> None:
        reserve = getattr(self.inner, "reserve_for_training", None)
        if reserve is not None:
            reserve(planned)

    def batch_group(self, target: ModelTarget, params: GenerationParams) -> Hashable:
        if self.mix_adapters:
            return batch_group(self.inner, target, params)
        return (target, params)

    def generate(
        self, target: ModelTarget, prompt: Conversation, params: GenerationParams
    ) -> GenerationResult:
        check_prompt(prompt)  # one bad prompt must not fail the requests batched with it
        key = self.batch_group(target, params)
        future: Future[GenerationResult] = Future()
        with self._lock:
            batch = self._open.get(key)
            leader = batch is None
            if batch is None:
                batch = self._open[key] = _Batch()
            batch.requests.append(Request(target, prompt, params))
            batch.futures.append(future)
            if len(batch.requests) >= self.max_batch:
                del self._open[key]  # later arrivals open a new batch
                batch.full.set()
        if leader:
            batch.full.wait(self.window_s)
            with self._lock:
                if self._open.get(key) is batch:
                    del self._open[key]
            self._run(batch)
        return future.result()

    def _run(self, batch: _Batch) -> None:
        try:
            outcomes = generate_many(self.inner, batch.requests)
            for future, outcome in zip(batch.futures, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
        except BaseException as err:  # every caller waits on its future: none may be left
            for future in batch.futures:
                if not future.done():
                    future.set_exception(err)
            if not isinstance(err, Exception):
                raise

    def generate_many(self, requests: Sequence[Request]) -> list[Outcome]:
        return generate_many(self.inner, requests)

    def generate_batch(
        self, target: ModelTarget, prompts: list[Conversation], params: GenerationParams
    ) -> list[GenerationResult]:
        return self.inner.generate_batch(target, prompts, params)

    def stream(
        self, target: ModelTarget, prompt: Conversation, params: GenerationParams
    ) -> TextStream:
        return self.inner.stream(target, prompt, params)

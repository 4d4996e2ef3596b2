"""Micro-batching: single requests that arrive together run as one batched generation.

The first request for a (target, params) pair opens a batch and waits up to ``window_s`` (less if
the batch fills) for others to join; it then runs the batch on its own thread and hands every
caller its own result. No background thread is needed.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

from tuneforge.data.records import Conversation
from tuneforge.inference.types import (
    GenerationParams,
    GenerationResult,
    InferenceBackend,
    ModelTarget,
    TextStream,
    check_prompt,
)

BatchKey = tuple[ModelTarget, GenerationParams]


@dataclass
class _Batch:
    prompts: list[Conversation] = field(default_factory=list)
    futures: list[Future[GenerationResult]] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)


class BatchingBackend:
    """Wraps an :class:`InferenceBackend`; ``generate`` calls are batched across threads."""

    def __init__(self, inner: InferenceBackend, max_batch: int = 16, window_s: float = 0.01):
        self.inner = inner
        self.max_batch = max_batch
        self.window_s = window_s
        self._open: dict[BatchKey, _Batch] = {}
        self._lock = threading.Lock()

    def generate(
        self, target: ModelTarget, prompt: Conversation, params: GenerationParams
    ) -> GenerationResult:
        check_prompt(prompt)  # one bad prompt must not fail the requests batched with it
        key = (target, params)
        future: Future[GenerationResult] = Future()
        with self._lock:
            batch = self._open.get(key)
            leader = batch is None
            if batch is None:
                batch = self._open[key] = _Batch()
            batch.prompts.append(prompt)
            batch.futures.append(future)
            if len(batch.prompts) >= self.max_batch:
                del self._open[key]  # later arrivals open a new batch
                batch.full.set()
        if leader:
            batch.full.wait(self.window_s)
            with self._lock:
                if self._open.get(key) is batch:
                    del self._open[key]
            self._run(target, params, batch)
        return future.result()

    def _run(self, target: ModelTarget, params: GenerationParams, batch: _Batch) -> None:
        try:
            results = self.inner.generate_batch(target, batch.prompts, params)
            for future, result in zip(batch.futures, results, strict=True):
                future.set_result(result)
        except BaseException as err:  # every caller waits on its future: none may be left
            for future in batch.futures:
                if not future.done():
                    future.set_exception(err)
            if not isinstance(err, Exception):
                raise

    def generate_batch(
        self, target: ModelTarget, prompts: list[Conversation], params: GenerationParams
    ) -> list[GenerationResult]:
        return self.inner.generate_batch(target, prompts, params)

    def stream(
        self, target: ModelTarget, prompt: Conversation, params: GenerationParams
    ) -> TextStream:
        return self.inner.stream(target, prompt, params)

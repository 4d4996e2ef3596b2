"""BatchingBackend: concurrent single requests run as shared batches, each caller gets its own."""

from __future__ import annotations

import threading

import pytest

from tests.inference.conftest import PROMPTS
from tuneforge.inference.batching import BatchingBackend
from tuneforge.inference.types import GenerationParams

GREEDY = GenerationParams(max_output_tokens=12)


class CountingBackend:
    """Passes calls through to a real backend and records the size of every batch."""

    def __init__(self, inner, fail: bool = False) -> None:
        self.inner = inner
        self.fail = fail
        self.batches: list[int] = []

    def generate_batch(self, target, prompts, params):
        self.batches.append(len(prompts))
        if self.fail:
            raise RuntimeError("out of memory")
        return self.inner.generate_batch(target, prompts, params)


def call_together(batching, target, prompts, params) -> list:
    barrier = threading.Barrier(len(prompts))
    results: list = [None] * len(prompts)
    errors: list = [None] * len(prompts)

    def call(index: int) -> None:
        barrier.wait()
        try:
            results[index] = batching.generate(target, prompts[index], params)
        except Exception as err:
            errors[index] = err

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results if not any(errors) else errors


def test_concurrent_requests_share_batches(backend, base):
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(8)]
    singles = [backend.generate(base, prompt, GREEDY) for prompt in prompts]
    counting = CountingBackend(backend)
    batching = BatchingBackend(counting, max_batch=16, window_s=0.2)

    results = call_together(batching, base, prompts, GREEDY)

    assert results == singles
    assert len(counting.batches) < len(prompts)
    assert sum(counting.batches) == len(prompts)


def test_a_full_batch_runs_without_waiting_and_the_rest_form_another(backend, base):
    counting = CountingBackend(backend)
    batching = BatchingBackend(counting, max_batch=3, window_s=5.0)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(6)]
    results = call_together(batching, base, prompts, GREEDY)
    assert counting.batches == [3, 3]  # both filled: neither waited out the 5 s window
    assert all(result.completions for result in results)


def test_every_caller_of_a_failed_batch_gets_the_error(backend, base):
    batching = BatchingBackend(CountingBackend(backend, fail=True), window_s=0.1)
    errors = call_together(batching, base, PROMPTS, GREEDY)
    assert all(isinstance(err, RuntimeError) for err in errors)


def test_different_params_are_not_mixed(backend, base):
    counting = CountingBackend(backend)
    batching = BatchingBackend(counting, window_s=0.05)
    short = GenerationParams(max_output_tokens=3)
    barrier = threading.Barrier(2)
    results = {}

    def call(params) -> None:
        barrier.wait()
        results[params] = batching.generate(base, PROMPTS[0], params)

    threads = [threading.Thread(target=call, args=(p,)) for p in (GREEDY, short)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counting.batches == [1, 1]
    assert results[short].completions[0].output_tokens == 3


@pytest.mark.parametrize("method", ["generate_batch", "stream"])
def test_batches_and_streams_pass_through(backend, base, method):
    batching = BatchingBackend(backend)
    if method == "stream":
        expected = backend.generate(base, PROMPTS[0], GREEDY).completions[0].text
        assert "".join(batching.stream(base, PROMPTS[0], GREEDY)) == expected
    else:
        assert batching.generate_batch(base, PROMPTS, GREEDY) == backend.generate_batch(
            base, PROMPTS, GREEDY
        )

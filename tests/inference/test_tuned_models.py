"""Tuned models: LoRA adapters swapped on one shared base, full fine-tunes, the LRU of bases."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest
import torch

from tests.inference.conftest import PROMPTS
from tuneforge.errors import NotFound
from tuneforge.inference.model_cache import parameter_bytes
from tuneforge.inference.transformers_backend import TransformersBackend
from tuneforge.inference.types import GenerationParams, ModelTarget

GREEDY = GenerationParams(max_output_tokens=16)


def tuned(base: ModelTarget, adapter: Path) -> ModelTarget:
    return ModelTarget(name=adapter.name, base_source=base.base_source, adapter_path=adapter)


def text(backend, target: ModelTarget, prompt=PROMPTS[0]) -> str:
    return backend.generate(target, prompt, GREEDY).completions[0].text


@pytest.fixture
def fresh_backend() -> TransformersBackend:
    return TransformersBackend(memory_budget_bytes=1 << 30, device="cpu")


def test_an_adapter_changes_the_output_and_is_disabled_for_the_base(backend, base, adapters):
    before = text(backend, base)
    adapted = text(backend, tuned(base, adapters[0]))
    assert adapted != before
    assert text(backend, base) == before  # the base request ran with the adapter disabled
    assert text(backend, tuned(base, adapters[0])) == adapted


def test_ten_adapters_share_one_base(fresh_backend, base, adapters):
    targets = [tuned(base, adapter) for adapter in adapters]
    first = {target: text(fresh_backend, target) for target in targets}
    assert len(set(first.values())) == len(targets)
    assert fresh_backend.loaded_bases() == [base.base_source]
    assert fresh_backend.load_counts() == {base.base_source: 1}

    # Interleaved, from several threads at once, each request gets its own adapter's answer.
    order = [*targets, base] * 2
    random.Random(0).shuffle(order)
    answers: dict[int, str] = {}

    def ask(index: int, target: ModelTarget) -> None:
        answers[index] = text(fresh_backend, target)

    threads = [threading.Thread(target=ask, args=item) for item in enumerate(order)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    base_text = text(fresh_backend, base)
    expected = {**first, base: base_text}
    assert [answers[i] for i in range(len(order))] == [expected[t] for t in order]
    assert fresh_backend.load_counts() == {base.base_source: 1}


def test_adapters_past_the_limit_are_unloaded_and_reload(base, adapters):
    backend = TransformersBackend(
        memory_budget_bytes=1 << 30, device="cpu", max_adapters_per_model=2
    )
    answers = [text(backend, tuned(base, adapter)) for adapter in adapters[:3]]
    assert text(backend, tuned(base, adapters[0])) == answers[0]  # evicted, then loaded again
    assert backend.load_counts() == {base.base_source: 1}


def test_lru_evicts_a_base_when_the_budget_holds_one(tiny_source, large_source):
    sizes = []
    for source in (tiny_source, large_source):
        from tuneforge.models.loading import load_causal_lm

        sizes.append(parameter_bytes(load_causal_lm(source)))
    backend = TransformersBackend(memory_budget_bytes=max(sizes), device="cpu")
    small = ModelTarget(name="small", base_source=tiny_source)
    large = ModelTarget(name="large", base_source=large_source)
    answers = {target: text(backend, target) for target in (small, large)}
    for target in (small, large, small):
        assert text(backend, target) == answers[target]
        assert backend.loaded_bases() == [target.base_source]
    assert backend.load_counts() == {tiny_source: 3, large_source: 2}
    assert backend.evictions == 4


def test_a_model_in_training_counts_against_the_budget(tiny_source, large_source):
    from tuneforge.models.loading import load_causal_lm

    small_size, large_size = (
        parameter_bytes(load_causal_lm(s)) for s in (tiny_source, large_source)
    )
    backend = TransformersBackend(memory_budget_bytes=small_size + large_size, device="cpu")
    small = ModelTarget(name="small", base_source=tiny_source)
    large = ModelTarget(name="large", base_source=large_source)
    for target in (small, large):
        text(backend, target)
    assert backend.loaded_bases() == [tiny_source, large_source]  # both fit

    backend.reserve_for_training({"cuda:0": 1 << 40})  # training on another device
    assert backend.loaded_bases() == [tiny_source, large_source]
    backend.reserve_for_training({"cpu": small_size})  # a job starts training on the CPU
    assert backend.loaded_bases() == [large_source]  # the least recently used made room
    text(backend, small)  # the one in use stays, however little room is left
    assert backend.loaded_bases() == [small.base_source]
    backend.reserve_for_training({})  # the job ended
    text(backend, large)
    assert backend.loaded_bases() == [tiny_source, large_source]


def test_a_full_fine_tune_loads_as_a_model_of_its_own(fresh_backend, base, tokenizer, tmp_path):
    from tuneforge.models.loading import load_causal_lm

    model = load_causal_lm(base.base_source)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.lm_head.weight.add_(torch.randn(model.lm_head.weight.shape, generator=generator))
    folder = tmp_path / "full"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    full = ModelTarget(name="full", base_source=base.base_source, weights_path=folder)

    assert text(fresh_backend, full) != text(fresh_backend, base)
    assert set(fresh_backend.loaded_bases()) == {str(folder.resolve()), base.base_source}


def test_missing_tuned_model_folders_are_not_found(backend, base, tmp_path):
    with pytest.raises(NotFound, match="adapter"):
        text(backend, tuned(base, tmp_path))
    with pytest.raises(NotFound, match="adapter"):
        backend.stream(tuned(base, tmp_path), PROMPTS[0], GREEDY)  # before any text is sent
    with pytest.raises(NotFound, match=r"config\.json"):
        text(backend, ModelTarget("gone", base.base_source, weights_path=tmp_path / "gone"))
    assert text(backend, base)  # the model lock was released

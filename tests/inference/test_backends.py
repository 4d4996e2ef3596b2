"""Choosing a backend, and the vLLM backend on a GPU."""

from __future__ import annotations

import importlib.util

import pytest
from pydantic import ValidationError

from tests.inference.conftest import PROMPTS
from tuneforge.config import Settings
from tuneforge.errors import InvalidArgument
from tuneforge.inference import BatchingBackend, make_backend
from tuneforge.inference.types import GenerationParams, ModelTarget, cut_at_stop, held_back


def test_transformers_is_the_default(monkeypatch, tmp_path):
    monkeypatch.delenv("TUNEFORGE_INFERENCE_BACKEND", raising=False)
    backend = make_backend(Settings(data_dir=tmp_path, inference_memory_bytes=1 << 20))
    assert isinstance(backend, BatchingBackend)
    assert type(backend.inner).__name__ == "TransformersBackend"


def test_the_model_cache_budget_is_half_the_machines_memory_by_default(monkeypatch, tmp_path):
    from tuneforge.inference import transformers_backend

    monkeypatch.delenv("TUNEFORGE_INFERENCE_MEMORY_BYTES", raising=False)
    monkeypatch.setattr(transformers_backend, "memory_bytes", lambda: 64 << 30)
    backend = make_backend(Settings(data_dir=tmp_path))
    assert backend.inner._cache.memory_budget_bytes == 32 << 30  # was a fixed 8 GiB

    monkeypatch.setattr(transformers_backend, "memory_bytes", lambda: 6 << 30)  # a small box
    assert make_backend(Settings(data_dir=tmp_path)).inner._cache.memory_budget_bytes == 3 << 30


def test_a_configured_model_cache_budget_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNEFORGE_INFERENCE_MEMORY_BYTES", str(5 << 30))
    backend = make_backend(Settings(data_dir=tmp_path))
    assert backend.inner._cache.memory_budget_bytes == 5 << 30


def test_an_unknown_backend_is_refused_when_the_settings_load(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNEFORGE_INFERENCE_BACKEND", "tgi")
    with pytest.raises(ValidationError, match="inference_backend"):
        Settings(data_dir=tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_without_the_package_says_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNEFORGE_INFERENCE_BACKEND", "vllm")
    with pytest.raises(InvalidArgument, match="pip install vllm"):
        make_backend(Settings(data_dir=tmp_path))


def test_stop_helpers():
    assert cut_at_stop("one. two. three", (". t", "two")) == ("one", True)
    assert cut_at_stop("plain", ("x",)) == ("plain", False)
    assert held_back("the end: <", ("<stop>",)) == 1
    assert held_back("the end: <st", ("<stop>", "st")) == 3
    assert held_back("nothing", ("<stop>",)) == 0


def test_targets_and_params_normalise_what_json_gives(tmp_path):
    target = ModelTarget("m", "base", adapter_path=str(tmp_path))
    assert target.adapter_path == tmp_path
    assert GenerationParams(stop="###").stop == ("###",)
    assert GenerationParams(stop=["a", ""]).stop == ("a",)
    hash(GenerationParams(stop=["a"]))
    with pytest.raises(InvalidArgument, match="not both"):
        ModelTarget("m", "base", adapter_path=tmp_path, weights_path=tmp_path)


@pytest.mark.gpu
def test_vllm_serves_the_base_and_adapters(base, adapters, tokenizer):
    pytest.importorskip("vllm")
    from tuneforge.data.tokenize import prompt_ids
    from tuneforge.inference.vllm_backend import VLLMBackend

    backend = VLLMBackend(gpu_memory_utilization=0.3, enforce_eager=True)
    greedy = GenerationParams(max_output_tokens=12)
    base_text = backend.generate(base, PROMPTS[0], greedy).completions[0].text
    tuned = [
        ModelTarget(name=a.name, base_source=base.base_source, adapter_path=a) for a in adapters[:3]
    ]
    texts = [backend.generate(t, PROMPTS[0], greedy).completions[0].text for t in tuned]
    assert len({base_text, *texts}) == 4
    assert backend.generate(base, PROMPTS[0], greedy).completions[0].text == base_text

    results = backend.generate_batch(base, PROMPTS, GenerationParams(max_output_tokens=5, n=2))
    for prompt, result in zip(PROMPTS, results, strict=True):
        assert result.prompt_tokens == len(prompt_ids(prompt, tokenizer))
        assert [c.output_tokens for c in result.completions] == [5, 5]
    seeded = GenerationParams(temperature=1.0, seed=3, max_output_tokens=8)
    assert backend.generate(base, PROMPTS[0], seeded) == backend.generate(base, PROMPTS[0], seeded)


def test_the_inference_counts_as_serving_while_it_generates_and_a_minute_after(
    tiny_source, monkeypatch
):
    """Serving on the CPU takes a share of the cores from the training runners; an idle
    server gives it back."""
    from tuneforge.inference import model_cache
    from tuneforge.inference.transformers_backend import SERVING_IDLE_S, TransformersBackend

    backend = TransformersBackend(memory_budget_bytes=1 << 30, device="cpu")
    assert not backend.serves_on_cpu()  # nothing loaded
    target = ModelTarget(name="tiny", base_source=tiny_source)
    backend.generate(target, PROMPTS[0], GenerationParams(max_output_tokens=2))
    assert backend.serves_on_cpu()

    later = model_cache.time.monotonic() + SERVING_IDLE_S + 1
    monkeypatch.setattr(model_cache.time, "monotonic", lambda: later)
    assert not backend.serves_on_cpu()  # loaded, but idle for over a minute

"""The stacked (gathered) LoRA path of mixed batches: the same logits as PEFT's ``adapter_names``
and as each adapter alone, and the backend takes it whenever every adapter can be stacked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import random_lora_adapter
from tests.inference.conftest import PROMPTS
from tests.inference.test_mixed_batches import GREEDY, mixed_requests, tuned
from tuneforge.inference.transformers_backend import TransformersBackend
from tuneforge.inference.types import Request

# Ranks differ, and so do the layers, scalings (rsLoRA included) and initial A weights.
ADAPTERS = {
    "r2": dict(r=2, lora_alpha=8, target_modules="all-linear"),
    "r8": dict(r=8, lora_alpha=4, target_modules="all-linear", use_rslora=True),
    "attention": dict(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"]),
}
ROWS = ["r2", "__base__", "r8", "attention", "r2", "__base__"]


def random_adapter(source: str, seed: int, folder: Path, **config) -> Path:
    """Every LoRA weight random (the A weights too, so the initial A differs by seed)."""
    return random_lora_adapter(source, folder, seed, randomized="lora_", scale=0.3, **config)


@pytest.fixture(scope="module")
def peft_model(tiny_source, tmp_path_factory):
    from peft import PeftModel

    from tuneforge.models.loading import load_causal_lm

    root = tmp_path_factory.mktemp("ranks")
    folders = {
        name: random_adapter(tiny_source, seed, root / name, **config)
        for seed, (name, config) in enumerate(ADAPTERS.items())
    }
    first, *others = folders
    model = PeftModel.from_pretrained(load_causal_lm(tiny_source), folders[first], first)
    for name in others:
        model.load_adapter(folders[name], adapter_name=name)
    return model.eval()


def batch(tokenizer, rows: int) -> dict[str, torch.Tensor]:
    texts = [f"row {i}: " + "a fine film " * (i + 1) for i in range(rows)]
    tokenizer.padding_side = "left"
    return dict(tokenizer(texts, return_tensors="pt", padding=True))


def test_logits_equal_peft_mixed_forward_and_each_adapter_alone(peft_model, tokenizer):
    from tuneforge.inference.gathered_lora import GatheredLora, gatherable

    assert all(gatherable(peft_model, name) for name in ADAPTERS)
    inputs = batch(tokenizer, len(ROWS))
    gathered = GatheredLora(peft_model, list(ADAPTERS))
    with torch.no_grad():
        with gathered.applied(peft_model, ROWS):
            stacked = peft_model(**inputs).logits
        peft_mixed = peft_model(**inputs, adapter_names=ROWS).logits
        # Each adapter alone on the same batch (one row alone would be padded differently).
        with peft_model.disable_adapter():
            alone = {"__base__": peft_model(**inputs).logits}
        for name in ADAPTERS:
            peft_model.set_adapter(name)
            alone[name] = peft_model(**inputs).logits
    # Batched products sum in another order than PEFT's: fp32 differences of a few 1e-5 on one
    # CPU (3.5e-5 seen), which another CPU's kernels may not reproduce.
    for row, name in enumerate(ROWS):
        torch.testing.assert_close(stacked[row], alone[name][row], atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(stacked, peft_mixed, atol=2e-4, rtol=1e-4)
    assert not torch.allclose(stacked[0], stacked[1], atol=1e-3)  # the adapters change logits
    with torch.no_grad():  # the hooks are gone afterwards: PEFT's own path is untouched
        torch.testing.assert_close(peft_model(**inputs, adapter_names=ROWS).logits, peft_mixed)


def test_a_batch_of_another_size_is_refused(peft_model, tokenizer):
    from tuneforge.inference.gathered_lora import GatheredLora

    gathered = GatheredLora(peft_model, list(ADAPTERS))
    refused = pytest.raises(ValueError, match="mixed batch of 2 rows got an input of 3 rows")
    with torch.no_grad(), gathered.applied(peft_model, ROWS[:2]), refused:
        peft_model(**batch(tokenizer, 3))


def test_mixed_batches_of_plain_lora_take_the_stacked_path(backend, base, adapters, monkeypatch):
    from peft.tuners.lora import LoraLayer

    requests = mixed_requests(base, adapters)
    alone = [backend.generate(r.target, r.prompt, r.params) for r in requests]

    def refused(*args, **kwargs):
        raise AssertionError("PEFT's per-adapter loop ran")

    monkeypatch.setattr(LoraLayer, "_mixed_batch_forward", refused)
    assert backend.generate_many(requests) == alone


def test_an_adapter_that_cannot_be_stacked_keeps_pefts_path(
    backend, base, adapters, tmp_path, monkeypatch
):
    from peft.tuners.lora import LoraLayer

    from tuneforge.inference.model_cache import mixable

    with_bias = random_adapter(
        base.base_source,
        6,
        tmp_path / "lora-bias",
        r=4,
        target_modules="all-linear",
        lora_bias=True,
    )
    assert mixable(with_bias)  # PEFT mixes it, the stacks leave lora_B's bias out
    targets = [tuned(base, with_bias), base, tuned(base, adapters[0])]
    requests = [Request(t, PROMPTS[i], GREEDY) for i, t in enumerate(targets)]
    alone = [backend.generate(r.target, r.prompt, r.params) for r in requests]
    calls = []
    original = LoraLayer._mixed_batch_forward

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(LoraLayer, "_mixed_batch_forward", counted)
    assert backend.generate_many(requests) == alone
    assert calls


def test_stacks_follow_adapters_loaded_and_evicted(base, adapters, monkeypatch):
    from peft.tuners.lora import LoraLayer

    backend = TransformersBackend(
        memory_budget_bytes=1 << 30, device="cpu", max_adapters_per_model=2
    )
    monkeypatch.setattr(LoraLayer, "_mixed_batch_forward", None)  # never PEFT's loop
    for pair in (adapters[:2], adapters[2:4], adapters[:2]):  # each pair evicts the other
        requests = [Request(tuned(base, a), PROMPTS[i], GREEDY) for i, a in enumerate(pair)]
        requests.append(Request(base, PROMPTS[2], GREEDY))
        mixed = backend.generate_many(requests)
        assert mixed == [backend.generate(r.target, r.prompt, r.params) for r in requests]

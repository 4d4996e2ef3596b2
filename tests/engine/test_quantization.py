"""QLoRA (``quantization="nf4"``): a 4-bit base with a LoRA adapter trained on it, on a CPU
through bitsandbytes' CPU backend; what cannot train quantized is refused before it starts."""

from __future__ import annotations

import importlib.util

import pytest
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.engine.conftest import RecordingObserver
from tests.helpers import exact_match
from tuneforge.data.validate import load_examples
from tuneforge.engine import quantization
from tuneforge.engine.run import run_tuning
from tuneforge.engine.spec import Hyperparameters, TuningSpec
from tuneforge.errors import InvalidArgument

TINY = "tuneforge/tiny-chat"


class PlanWatcher(RecordingObserver):
    def __init__(self) -> None:
        super().__init__()
        self.memory_plans = []

    def on_memory_plan(self, plan):
        self.memory_plans.append(plan)


def tune(sentiment, settings, output, **hyperparameters):
    observer = PlanWatcher()
    spec = TuningSpec(base_model=TINY, hyperparameters=Hyperparameters(**hyperparameters))
    result = run_tuning(
        spec, sentiment["train"], sentiment["validation"], output, settings, observer
    )
    return result, observer


@pytest.mark.slow
def test_qlora_trains_an_adapter_on_a_4_bit_base_that_plain_peft_loads(
    sentiment, session_settings, tmp_path, models_dir
):
    quantized, observer = tune(
        sentiment, session_settings, tmp_path / "q", epochs=5, quantization="nf4"
    )
    assert quantized.outcome == "succeeded"
    # The base really was 4-bit: its linear layers' weights take half a byte per parameter.
    plain = AutoModelForCausalLM.from_pretrained(models_dir / "tiny-chat")
    full_bytes = sum(p.numel() * p.element_size() for p in plain.parameters())
    assert observer.memory_plans[0].weights < 0.8 * full_bytes
    # The adapter is an ordinary LoRA adapter: it serves on the unquantized base and learned.
    tokenizer = AutoTokenizer.from_pretrained(models_dir / "tiny-chat")
    tuned = PeftModel.from_pretrained(plain, quantized.default_checkpoint.path)
    assert tuned.peft_config["default"].r == 8
    assert exact_match(tuned, tokenizer, sentiment["test"]) >= 0.9


def test_quantization_goes_with_a_lora_adapter_only():
    with pytest.raises(InvalidArgument) as refused:
        TuningSpec(
            base_model=TINY, mode="full", hyperparameters=Hyperparameters(quantization="nf4")
        )
    assert refused.value.param == "quantization"
    assert "LoRA adapter only" in str(refused.value)


def test_quantization_without_bitsandbytes_is_refused_naming_it(monkeypatch):
    real = importlib.util.find_spec

    def without_bitsandbytes(name, *args):
        return None if name == "bitsandbytes" else real(name, *args)

    monkeypatch.setattr(quantization.importlib.util, "find_spec", without_bitsandbytes)
    with pytest.raises(InvalidArgument) as refused:
        quantization.refuse_unsupported_quantization("nf4", "peft")
    assert refused.value.param == "quantization"
    assert "bitsandbytes" in str(refused.value)
    quantization.refuse_unsupported_quantization(None, "full")  # nothing asked, nothing refused


def test_unknown_quantization_is_a_validation_error():
    with pytest.raises(ValueError, match="nf4"):
        Hyperparameters(quantization="int3")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["preference", "reward"])
def test_preference_and_reward_tuning_take_a_4_bit_base(
    method, preference_files, session_settings, tmp_path
):
    """DPO trains the adapter against itself disabled; a reward model also trains its new
    score head in full beside the adapter, in the run's dtype."""
    pairs = load_examples(preference_files["train"], task="preference")[:80]
    spec = TuningSpec(
        base_model=TINY, method=method, hyperparameters={"epochs": 1, "quantization": "nf4"}
    )
    result = run_tuning(spec, pairs, [], tmp_path / method, session_settings)
    assert result.outcome == "succeeded"
    assert (result.default_checkpoint.path / "adapter_model.safetensors").is_file()

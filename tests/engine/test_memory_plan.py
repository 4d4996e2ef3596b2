"""The memory plan: what a run will hold, what it changes to fit the device, and the refusal of a
run that cannot fit; and runs that train under the plan's choices."""

from __future__ import annotations

import pytest
from peft import get_peft_model
from transformers import AutoModelForCausalLM

from tests.engine.conftest import RecordingObserver
from tuneforge.engine import memory_plan, training
from tuneforge.engine.errors import TuningError
from tuneforge.engine.memory_plan import (
    GIB,
    HEADROOM,
    ModelShape,
    Workload,
    estimate,
    lora_parameters,
    model_shape,
    plan_memory,
    refuse_unless_fits,
    slowdown,
)
from tuneforge.engine.run import run_tuning
from tuneforge.engine.spec import Hyperparameters, TuningSpec
from tuneforge.engine.training import lora_config

TINY = "tuneforge/tiny-chat"
# A 7B-like model in bf16 (Llama 2 7B's shape), trained with all weights.
SEVEN_B = ModelShape(
    parameters=6_740_000_000,
    weight_bytes=2 * 6_740_000_000,
    trainable=6_740_000_000,
    trainable_value_bytes=2,
    activation_value_bytes=2,
    layers=32,
    hidden_size=4096,
    intermediate_size=11008,
    kv_size=4096,
    vocabulary=32000,
)
ONE_B_LORA = ModelShape(
    parameters=1_000_000_000,
    weight_bytes=4_000_000_000,
    trainable=10_000_000,
    trainable_value_bytes=4,
    activation_value_bytes=4,
    layers=16,
    hidden_size=2048,
    intermediate_size=8192,
    kv_size=512,
    vocabulary=32000,
)


def workload(batch: int = 8, tokens: int = 512, **kwargs) -> Workload:
    return Workload(batch_size=batch, longest_rows=[tokens] * batch, **kwargs)


def available_for(shape, work, device, *, micro_batch, checkpointing) -> int:
    """Just enough memory for this way of running the workload."""
    needed = estimate(
        shape, work, device, None, micro_batch=micro_batch, checkpointing=checkpointing
    )
    return int(needed.total / HEADROOM) + 1


def test_a_run_that_fits_runs_as_asked():
    plan = plan_memory(ONE_B_LORA, workload(), "cuda", 80 * GIB)
    assert plan.fits
    assert (plan.micro_batch_size, plan.gradient_accumulation_steps) == (8, 1)
    assert not plan.gradient_checkpointing
    parts = plan.weights + plan.gradients + plan.optimizer + plan.activations + plan.logits
    assert plan.total == parts + plan.runtime


def test_on_a_gpu_recomputation_comes_first_then_micro_batches():
    assert slowdown("cuda", 1, True) < slowdown("cuda", 2, False)
    work = workload()
    just_checkpointing = available_for(ONE_B_LORA, work, "cuda", micro_batch=8, checkpointing=True)
    plan = plan_memory(ONE_B_LORA, work, "cuda", just_checkpointing)
    assert plan.fits and plan.gradient_checkpointing and plan.micro_batch_size == 8

    half = available_for(ONE_B_LORA, work, "cuda", micro_batch=4, checkpointing=True)
    plan = plan_memory(ONE_B_LORA, work, "cuda", half)
    assert plan.fits and plan.gradient_checkpointing
    assert (plan.micro_batch_size, plan.gradient_accumulation_steps) == (4, 2)


def test_on_a_cpu_micro_batches_come_before_recomputation():
    work = workload()
    half = available_for(ONE_B_LORA, work, "cpu", micro_batch=4, checkpointing=False)
    plan = plan_memory(ONE_B_LORA, work, "cpu", half)
    assert plan.fits and not plan.gradient_checkpointing
    assert (plan.micro_batch_size, plan.gradient_accumulation_steps) == (4, 2)

    single = available_for(ONE_B_LORA, work, "cpu", micro_batch=1, checkpointing=False)
    plan = plan_memory(ONE_B_LORA, work, "cpu", single)
    assert plan.fits and not plan.gradient_checkpointing and plan.micro_batch_size == 1
    # measured there: one example at a time is quicker than recomputing the whole batch
    assert slowdown("cpu", 8, False) < slowdown("cpu", 1, True)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_of_the_ways_that_fit_the_plan_takes_the_quickest(device):
    work = workload()
    ways = [(m, c) for m in (8, 4, 2, 1) for c in (False, True)]
    needs = {
        (m, c): estimate(ONE_B_LORA, work, device, None, micro_batch=m, checkpointing=c).total
        for m, c in ways
    }
    for need in needs.values():
        available = int(need / HEADROOM) + 1
        plan = plan_memory(ONE_B_LORA, work, device, available)
        assert plan.fits
        taken = slowdown(device, 8 // plan.micro_batch_size, plan.gradient_checkpointing)
        fitting = [way for way in ways if needs[way] <= HEADROOM * available]
        assert taken == min(slowdown(device, 8 // m, c) for m, c in fitting)


def test_a_micro_batch_always_divides_the_batch():
    """So an optimizer step still sees batch_size examples."""
    work = workload(batch=6)
    for micro_batch in (3, 2, 1):
        enough = available_for(
            ONE_B_LORA, work, "cpu", micro_batch=micro_batch, checkpointing=False
        )
        plan = plan_memory(ONE_B_LORA, work, "cpu", enough)
        assert plan.micro_batch_size * plan.gradient_accumulation_steps == 6


def test_a_run_that_fits_nowhere_is_refused_with_the_numbers_and_what_to_change():
    plan = plan_memory(SEVEN_B, workload(), "cuda", 24 * GIB)
    assert not plan.fits
    assert plan.gradient_checkpointing and plan.micro_batch_size == 1  # the least it could
    with pytest.raises(TuningError) as refused:
        refuse_unless_fits(plan, max_seq_length=512, mode="full")
    message = str(refused.value)
    assert refused.value.code == "insufficient_memory"
    assert "not enough memory to train" in message
    assert f"{plan.total / GIB:.2f} GiB" in message  # the estimate
    assert "weights 12.55 GiB" in message and "optimizer 25.11 GiB" in message
    assert "21.60 GiB is available" in message and "24.00 GiB free" in message
    assert "batch_size (now 8)" in message and "max_seq_length (now 512)" in message
    assert "LoRA adapter (mode peft)" in message


def test_lora_is_not_told_to_use_lora():
    plan = plan_memory(ONE_B_LORA, workload(), "cpu", 2 * GIB)
    with pytest.raises(TuningError) as refused:
        refuse_unless_fits(plan, max_seq_length=512, mode="peft")
    assert "mode peft" not in str(refused.value)


def test_an_unknown_amount_of_memory_plans_as_asked():
    plan = plan_memory(SEVEN_B, workload(), "cpu", None)
    assert plan.fits and plan.micro_batch_size == 8 and not plan.gradient_checkpointing


def test_logits_grow_with_the_batch_and_the_vocabulary():
    def logits(shape, batch, **kwargs):
        return estimate(
            shape,
            workload(batch, tokens=128, **kwargs),
            "cpu",
            None,
            micro_batch=batch,
            checkpointing=False,
        ).logits

    small_vocabulary = ModelShape(**{**ONE_B_LORA.__dict__, "vocabulary": 8000})
    assert logits(ONE_B_LORA, 16) == 2 * logits(ONE_B_LORA, 8)
    assert logits(ONE_B_LORA, 8) == 4 * logits(small_vocabulary, 8)
    # TRL's fused head projects at most 4096 tokens at once: past that the logits stop growing
    assert logits(ONE_B_LORA, 64) == logits(ONE_B_LORA, 32) == 2 * logits(ONE_B_LORA, 16)
    # distillation's loss holds the whole logits, however many tokens
    assert logits(ONE_B_LORA, 64, loss="full") == 2 * logits(ONE_B_LORA, 32, loss="full")


def test_recomputation_and_micro_batches_shrink_the_activations():
    work = workload()
    plain = estimate(ONE_B_LORA, work, "cpu", None, micro_batch=8, checkpointing=False)
    recomputed = estimate(ONE_B_LORA, work, "cpu", None, micro_batch=8, checkpointing=True)
    halved = estimate(ONE_B_LORA, work, "cpu", None, micro_batch=4, checkpointing=False)
    assert recomputed.activations < plain.activations / 3
    assert halved.activations == plain.activations // 2
    assert halved.weights == plain.weights and halved.optimizer == plain.optimizer


def test_padded_rows_cost_the_longest_row_each():
    padded = Workload(batch_size=4, longest_rows=[300, 100, 50, 10], padded=True)
    laid_end_to_end = Workload(batch_size=4, longest_rows=[300, 100, 50, 10])
    assert padded.tokens(4) == 1200 and laid_end_to_end.tokens(4) == 460
    assert Workload(batch_size=4, longest_rows=[300]).tokens(4) == 1200  # fewer rows than asked


@pytest.fixture
def tiny_model(models_dir):
    return AutoModelForCausalLM.from_pretrained(models_dir / "tiny-chat")


def test_the_adapter_estimate_is_what_peft_trains(tiny_model):
    estimated = lora_parameters(tiny_model, rank=8)
    adapted = get_peft_model(tiny_model, lora_config(8))
    assert estimated == sum(p.numel() for p in adapted.parameters() if p.requires_grad)


def test_lora_trains_the_adapter_and_full_tuning_every_weight(tiny_model):
    parameters = sum(p.numel() for p in tiny_model.parameters())
    lora = model_shape(tiny_model, new_adapter_rank=8, activation_value_bytes=4)
    full = model_shape(tiny_model, new_adapter_rank=None, activation_value_bytes=4)
    assert full.trainable == parameters and lora.trainable == lora_parameters(tiny_model, 8)
    work = workload(tokens=64)
    full_plan = estimate(full, work, "cpu", None, micro_batch=8, checkpointing=False)
    lora_plan = estimate(lora, work, "cpu", None, micro_batch=8, checkpointing=False)
    assert full_plan.gradients == 4 * parameters  # fp32 on the CPU
    assert full_plan.optimizer == 2 * 4 * parameters  # AdamW's two moments
    assert lora_plan.optimizer == 2 * 4 * lora.trainable


# --- runs ------------------------------------------------------------------------------------


def squeeze(monkeypatch, *, micro_batch: int, checkpointing: bool) -> None:
    """Give the run just the memory this way of running its batch needs, so the real plan
    has to choose it."""
    real = memory_plan.plan_memory

    def squeezed(shape, work, device, available):
        enough = available_for(
            shape, work, device, micro_batch=micro_batch, checkpointing=checkpointing
        )
        return real(shape, work, device, enough)

    monkeypatch.setattr(training, "plan_memory", squeezed)


def tune(sentiment, settings, tmp_path, name: str, mode: str = "peft"):
    observer = RecordingObserver()
    result = run_tuning(
        TuningSpec(
            base_model=TINY, mode=mode, hyperparameters=Hyperparameters(epochs=1, batch_size=8)
        ),
        sentiment["train"][:64],
        [],
        tmp_path / name,
        settings,
        observer,
    )
    return result, observer


def test_the_plan_is_one_of_the_runs_events(sentiment, settings, tmp_path):
    _, observer = tune(sentiment, settings, tmp_path, "plain")
    [event] = [e for e in observer.events if e.startswith("memory plan")]
    assert "batch 8 in one pass" in event and "gradient checkpointing off" in event


def test_gradient_accumulation_keeps_the_steps_and_trains_as_the_whole_batch(
    sentiment, settings, tmp_path, monkeypatch
):
    whole, whole_observer = tune(sentiment, settings, tmp_path, "whole")
    squeeze(monkeypatch, micro_batch=2, checkpointing=False)
    split, observer = tune(sentiment, settings, tmp_path, "split")

    assert any("batch 8 as 4 micro-batches of 2" in e for e in observer.events)
    assert split.outcome == "succeeded"
    assert observer.plans[0].total_steps == split.steps == whole.steps == 8  # 64 examples
    assert [s.step for s in observer.steps] == list(range(1, 9))
    # the same examples per optimizer step, the loss averaged over all their tokens
    assert [s.loss for s in observer.steps] == pytest.approx(
        [s.loss for s in whole_observer.steps], rel=1e-3
    )


def test_gradient_checkpointing_trains_a_lora_adapter_and_all_weights(
    sentiment, settings, tmp_path, monkeypatch
):
    squeeze(monkeypatch, micro_batch=1, checkpointing=True)
    for mode in ("peft", "full"):
        result, observer = tune(sentiment, settings, tmp_path, mode, mode=mode)
        assert any("gradient checkpointing on" in e for e in observer.events)
        assert result.outcome == "succeeded" and result.steps == 8
        assert observer.steps[-1].loss < observer.steps[0].loss


def test_a_run_that_cannot_fit_is_refused_before_it_trains(sentiment, settings, tmp_path):
    cramped = settings.model_copy(update={"training_memory_bytes": 64 << 20})
    with pytest.raises(TuningError) as refused:
        tune(sentiment, cramped, tmp_path, "cramped")
    assert refused.value.code == "insufficient_memory"
    assert "58 MiB is available" in str(refused.value)
    assert not (tmp_path / "cramped" / "checkpoints").exists()

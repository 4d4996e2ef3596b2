"""The GPU's choices on a CPU: bf16 autocast (full fine-tuning's weights kept in fp32), Liger's
kernels only where they can run."""

from __future__ import annotations

import statistics

import pytest
import torch

from tests.engine.conftest import RecordingObserver
from tuneforge.engine import hardware, training
from tuneforge.engine.attention import PACKED_SDPA
from tuneforge.engine.hardware import Hardware, use_liger_kernel
from tuneforge.engine.run import run_tuning
from tuneforge.engine.spec import Hyperparameters, TuningSpec

TINY = "tuneforge/tiny-chat"


def step_losses(sentiment, settings, output, mode: str) -> list[float]:
    observer = RecordingObserver()
    spec = TuningSpec(base_model=TINY, mode=mode, hyperparameters=Hyperparameters(epochs=2))
    run_tuning(spec, sentiment["train"][:160], [], output, settings, observer)
    return [step.loss for step in observer.steps]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["peft", "full"])
def test_bf16_training_follows_the_fp32_loss_curve(
    mode, sentiment, settings, tmp_path, monkeypatch
):
    """What a GPU runs (bf16 autocast, bf16 frozen base or fp32 trained weights), on the CPU.
    Measured over seeds 42, 1 and 2: the curves (80 steps, loss 7.2 down to 0.1-0.9) differ by
    at most 0.03 at any step and 0.006 on average. Full fine-tuning in bf16 weights, which
    stops learning, differed by 2.7 on average."""
    fp32 = step_losses(sentiment, settings, tmp_path / "fp32", mode)
    bf16_cpu = Hardware("cpu", torch.bfloat16, PACKED_SDPA, "sdpa")
    monkeypatch.setattr(training, "detect_hardware", lambda: bf16_cpu)
    bf16 = step_losses(sentiment, settings, tmp_path / "bf16", mode)

    assert len(bf16) == len(fp32) == 80
    assert bf16 != fp32  # bf16 really ran
    differences = [abs(a - b) for a, b in zip(fp32, bf16, strict=True)]
    assert statistics.fmean(differences) < 0.05
    assert max(differences) < 0.25
    assert fp32[-1] < 0.3 * fp32[0] and bf16[-1] < 0.3 * bf16[0]


@pytest.mark.parametrize(
    ("cuda", "installed", "expected"),
    [(True, True, True), (True, False, False), (False, True, False), (False, False, False)],
)
def test_liger_kernels_are_used_when_installed_and_training_on_cuda(
    cuda, installed, expected, monkeypatch
):
    real = hardware.importlib.util.find_spec

    def find_spec(name, *args):
        if name == "liger_kernel":
            return real("json") if installed else None  # any spec stands for "installed"
        return real(name, *args)

    monkeypatch.setattr(hardware.torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(hardware.importlib.util, "find_spec", find_spec)
    assert use_liger_kernel() is expected

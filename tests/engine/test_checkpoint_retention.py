"""What a run keeps on disk: resume points within an epoch, the optimizer state only where a
resume needs it, full weights in the base's own dtype, only the last checkpoint when asked, and a
refusal up front when the disk cannot hold the run."""

from __future__ import annotations

import json
import shutil
from collections import namedtuple

import pytest
import torch
from peft import PeftModel
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from tests.engine.conftest import CrashAt, RecordingObserver, SaveWatcher, holding_optimizer
from tuneforge.engine.checkpoints import folder_bytes
from tuneforge.engine.errors import TuningError
from tuneforge.engine.run import run_tuning
from tuneforge.engine.spec import Hyperparameters, TuningSpec

TINY = "tuneforge/tiny-chat"
STEPS_PER_EPOCH = 30  # 120 examples in batches of 4


def saved_folders(checkpoints_dir) -> list[str]:
    return sorted(p.name for p in checkpoints_dir.glob("*-*"))


@pytest.fixture
def every_7_steps(settings):
    return settings.model_copy(update={"resume_point_steps": 7})


@pytest.fixture
def small(sentiment):
    return sentiment["train"][:120], sentiment["validation"][:20]


def lora_spec(epochs: int = 2, **options) -> TuningSpec:
    return TuningSpec(
        base_model=TINY, hyperparameters=Hyperparameters(epochs=epochs, batch_size=4, **options)
    )


def test_resume_points_come_every_n_steps_and_only_the_newest_holds_the_optimizer(
    small, every_7_steps, tmp_path
):
    output = tmp_path / "run"
    observer = SaveWatcher(output / "checkpoints")
    result = run_tuning(lora_spec(), *small, output, every_7_steps, observer)

    assert result.outcome == "succeeded"
    saves = [(c.kind, c.step) for c in observer.checkpoints]
    # Counted from the last save, an epoch's included: 30 is epoch 1's, 37 is 7 after it.
    assert saves == [
        ("resume", 7), ("resume", 14), ("resume", 21), ("resume", 28), ("epoch", 30),
        ("resume", 37), ("resume", 44), ("resume", 51), ("resume", 58), ("epoch", 60),
    ]  # fmt: skip
    # At each save the newest alone holds what a resume needs; older resume points are gone.
    for (kind, step), holding in zip(saves, observer.with_optimizer, strict=True):
        assert holding == [f"{'epoch-' + str(step // 30) if kind == 'epoch' else f'step-{step}'}"]
    # Succeeded: the epoch checkpoints stay, as weights only.
    assert saved_folders(output / "checkpoints") == ["epoch-1", "epoch-2"]
    assert holding_optimizer(output / "checkpoints") == []
    assert not list((output / "checkpoints").glob("*/rng_state*.pth"))
    assert observer.disk_use[-1] == folder_bytes(output)


def test_a_crash_mid_epoch_resumes_from_the_last_resume_point_and_ends_as_a_straight_run(
    small, every_7_steps, settings, tmp_path
):
    straight = run_tuning(lora_spec(), *small, tmp_path / "straight", settings)

    output = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        run_tuning(lora_spec(), *small, output, every_7_steps, CrashAt(step=47))
    assert saved_folders(output / "checkpoints") == ["epoch-1", "step-44"]

    resumer = RecordingObserver()
    resumed = run_tuning(lora_spec(), *small, output, every_7_steps, resumer)
    assert resumer.plans[0].resumed_from_step == 44  # 3 steps lost, not the epoch's 17
    assert resumed.outcome == "succeeded"
    assert straight.step_losses[-1][1] == pytest.approx(resumed.step_losses[-1][1], rel=1e-3)
    for a, b in zip(straight.epochs, resumed.epochs, strict=True):
        assert a.valid_loss == pytest.approx(b.valid_loss, rel=1e-3)


def test_a_cancel_keeps_the_last_resume_point_as_a_usable_checkpoint(
    small, every_7_steps, tmp_path, models_dir
):
    output = tmp_path / "run"
    observer = RecordingObserver(stop_at_step=40, stop_with="cancel")
    result = run_tuning(lora_spec(), *small, output, every_7_steps, observer)

    assert result.outcome == "cancelled" and result.steps == 41
    assert [(c.kind, c.step) for c in result.checkpoints] == [("epoch", 30), ("partial", 37)]
    partial = result.checkpoints[-1]
    assert observer.checkpoints[-1] == partial  # reported, to be listed with the job's
    assert saved_folders(output / "checkpoints") == ["epoch-1", "step-37"]
    assert holding_optimizer(output / "checkpoints") == []  # a cancelled run is over
    base = AutoModelForCausalLM.from_pretrained(models_dir / "tiny-chat")
    tuned = PeftModel.from_pretrained(base, partial.path)
    assert tuned.peft_config["default"].r == 8


def test_keep_optimizer_state_keeps_it_in_the_last_checkpoint(small, settings, tmp_path):
    output = tmp_path / "run"
    run_tuning(lora_spec(keep_optimizer_state=True), *small, output, settings)
    assert holding_optimizer(output / "checkpoints") == ["epoch-2"]


def test_export_last_checkpoint_only_keeps_one_checkpoint(small, every_7_steps, tmp_path):
    output = tmp_path / "run"
    observer = SaveWatcher(output / "checkpoints")
    result = run_tuning(
        lora_spec(epochs=3, export_last_checkpoint_only=True), *small, output, every_7_steps,
        observer,
    )  # fmt: skip
    assert [c.path.name for c in result.checkpoints] == ["epoch-3"]
    assert result.default_checkpoint.path.name == "epoch-3"
    assert saved_folders(output / "checkpoints") == ["epoch-3"]
    assert [(c.kind, c.epoch) for c in observer.checkpoints if c.kind != "resume"] == [("epoch", 3)]
    assert sum("only the last epoch's checkpoint is kept" in e for e in observer.events) == 3


@pytest.fixture
def bf16_base(models_dir, settings):
    """The tiny model as published in bf16 (trained in fp32 on a CPU)."""
    root = settings.data_dir / "roots"
    folder = root / "tiny-bf16"
    model = AutoModelForCausalLM.from_pretrained(models_dir / "tiny-chat", dtype=torch.bfloat16)
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (models_dir / "tiny-chat" / name).exists():
            shutil.copy(models_dir / "tiny-chat" / name, folder / name)
    return folder, settings.model_copy(update={"model_roots": [root]})


def weight_dtypes(folder) -> set[torch.dtype]:
    with safe_open(folder / "model.safetensors", framework="pt") as handle:
        return {handle.get_tensor(name).dtype for name in handle.keys()}  # noqa: SIM118


def test_full_weights_are_kept_in_the_bases_dtype(small, bf16_base, tmp_path):
    folder, settings = bf16_base
    output = tmp_path / "run"
    dtypes_when_epoch_2_saved = []

    class Watch(SaveWatcher):
        def on_checkpoint(self, checkpoint):
            super().on_checkpoint(checkpoint)
            if checkpoint.epoch == 2:
                dtypes_when_epoch_2_saved.append(
                    (
                        weight_dtypes(output / "checkpoints" / "epoch-1"),
                        weight_dtypes(checkpoint.path),
                    )
                )

    observer = Watch(output / "checkpoints")
    spec = TuningSpec(
        base_model=str(folder), mode="full", hyperparameters=Hyperparameters(epochs=2, batch_size=8)
    )
    result = run_tuning(spec, *small, output, settings, observer)
    # While epoch 2's save is the newest it keeps the fp32 weights a resume needs; epoch 1 is
    # already cast down; once the run is over, so is epoch 2.
    assert dtypes_when_epoch_2_saved == [({torch.bfloat16}, {torch.float32})]
    for checkpoint in result.checkpoints:
        assert weight_dtypes(checkpoint.path) == {torch.bfloat16}
        config = json.loads((checkpoint.path / "config.json").read_text())
        assert config["dtype"] == "bfloat16"
        parameters = sum(
            p.numel() for p in AutoModelForCausalLM.from_pretrained(folder).parameters()
        )
        # Weights only, two bytes each (plus the tokenizer's files).
        assert folder_bytes(checkpoint.path) < parameters * 2 + (2 << 20)
        reloaded = AutoModelForCausalLM.from_pretrained(checkpoint.path)
        assert reloaded.dtype == torch.bfloat16


DiskUsage = namedtuple("DiskUsage", "total used free")


def test_a_run_the_disk_cannot_hold_is_refused_before_it_trains(
    small, bf16_base, tmp_path, monkeypatch
):
    folder, settings = bf16_base
    monkeypatch.setattr(
        "tuneforge.engine.training.shutil.disk_usage", lambda path: DiskUsage(1 << 40, 0, 1 << 20)
    )
    observer = RecordingObserver()
    spec = TuningSpec(
        base_model=str(folder), mode="full", hyperparameters=Hyperparameters(epochs=3, batch_size=8)
    )
    with pytest.raises(TuningError) as raised:
        run_tuning(spec, *small, tmp_path / "run", settings, observer)
    assert raised.value.code == "insufficient_disk"
    message = str(raised.value)
    assert "2 trimmed checkpoints" in message and "1 MiB free" in message
    assert "export_last_checkpoint_only" in message and "LoRA" in message
    assert observer.steps == [] and saved_folders(tmp_path / "run" / "checkpoints") == []

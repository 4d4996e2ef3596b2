"""Failures that name what to change, and base models from a local folder."""

from __future__ import annotations

import shutil

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from tuneforge.engine.errors import TuningError
from tuneforge.engine.run import run_tuning
from tuneforge.engine.spec import Hyperparameters, TuningSpec
from tuneforge.errors import ModelNotFound


def test_out_of_memory_names_the_knobs_to_turn(sentiment, settings, tmp_path, monkeypatch):
    def out_of_memory(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr("trl.SFTTrainer.train", out_of_memory)
    spec = TuningSpec(
        base_model="tuneforge/tiny-chat",
        mode="full",
        hyperparameters=Hyperparameters(batch_size=16, max_seq_length=256),
    )
    with pytest.raises(TuningError) as caught:
        run_tuning(spec, sentiment["train"], [], tmp_path / "oom", settings)
    assert caught.value.code == "out_of_memory"
    message = str(caught.value)
    assert "batch size (now 16)" in message
    assert "max sequence length (now 256)" in message
    assert "mode 'peft'" in message


def test_tunes_a_base_model_from_a_local_folder(sentiment, settings, tmp_path, models_dir):
    """What a real user does with downloaded weights: a folder under a model root."""
    root = tmp_path / "my-models"
    shutil.copytree(models_dir / "tiny-chat", root / "my-chat-model")
    local = settings.model_copy(update={"model_roots": [root]})
    spec = TuningSpec(
        base_model=str(root / "my-chat-model"), hyperparameters=Hyperparameters(epochs=1)
    )
    result = run_tuning(spec, sentiment["train"][:40], [], tmp_path / "local", local)
    assert result.outcome == "succeeded"
    base = AutoModelForCausalLM.from_pretrained(root / "my-chat-model")
    PeftModel.from_pretrained(base, result.default_checkpoint.path)
    # The same folder by name, relative to its root.
    by_name = spec.model_copy(update={"base_model": "my-chat-model"})
    assert run_tuning(by_name, sentiment["train"][:40], [], tmp_path / "named", local).steps


def test_a_folder_outside_the_model_roots_is_refused(settings, tmp_path, models_dir, sentiment):
    outside = tmp_path / "elsewhere" / "model"
    shutil.copytree(models_dir / "tiny-chat", outside)
    with pytest.raises(ModelNotFound, match="TUNEFORGE_MODEL_ROOTS"):
        run_tuning(
            TuningSpec(base_model=str(outside)), sentiment["train"], [], tmp_path / "x", settings
        )

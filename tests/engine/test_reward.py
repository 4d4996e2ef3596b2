"""Reward-model tuning on the built-in preference data: the score head learns to rank each
chosen answer above its rejected one on held-out pairs, with LoRA and with all weights."""

from __future__ import annotations

import pytest

from tuneforge.data.samples import write_preference_task
from tuneforge.data.tokenize import with_response
from tuneforge.data.validate import load_examples
from tuneforge.engine.errors import TuningError
from tuneforge.engine.run import run_tuning
from tuneforge.engine.spec import TuningSpec
from tuneforge.inference.reward_scoring import RewardScorer
from tuneforge.inference.types import ModelTarget

TINY = "tuneforge/tiny-chat"


def pairwise_accuracy(target: ModelTarget, pairs) -> float:
    conversations = [with_response(p.prompt, a) for p in pairs for a in (p.chosen, p.rejected)]
    scores = RewardScorer().score(target, conversations)
    return sum(c > r for c, r in zip(scores[::2], scores[1::2], strict=True)) / len(pairs)


def reward_run(tmp_path, settings, seed: int, mode: str = "peft"):
    files = write_preference_task(tmp_path / "data", seed=seed)
    train, validation, test = (
        load_examples(files[split], task="preference") for split in ("train", "validation", "test")
    )
    spec = TuningSpec(base_model=TINY, method="reward", mode=mode, seed=seed)
    result = run_tuning(spec, train, validation, tmp_path / "run", settings)
    path = result.default_checkpoint.path
    weights = {"weights_path": path} if mode == "full" else {"adapter_path": path}
    target = ModelTarget(
        name="reward", base_source=str(settings.data_dir / "models" / "tiny-chat"),
        scores_only=True, **weights,
    )  # fmt: skip
    return result, target, test


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_a_lora_reward_model_ranks_held_out_pairs(tmp_path, settings, seed):
    """Measured 0.97-1.00 on data seeds 0-3 (the bar leaves room for other CPUs' floats)."""
    result, target, test = reward_run(tmp_path, settings, seed)
    assert result.outcome == "succeeded"
    # Each epoch reports its held-out pairwise accuracy.
    accuracies = [e.extra["eval_accuracy"] for e in result.epochs]
    assert len(accuracies) == 3 and accuracies[-1] >= 0.85
    assert pairwise_accuracy(target, test) >= 0.9
    # The adapter folder holds the trained score head beside the adapter.
    assert (result.default_checkpoint.path / "adapter_model.safetensors").is_file()


def test_a_full_weights_reward_model_ranks_held_out_pairs(tmp_path, settings):
    """Measured 0.89-0.99 over data seeds 0-3; 0.99 on seed 2."""
    result, target, test = reward_run(tmp_path, settings, seed=2, mode="full")
    assert (result.default_checkpoint.path / "config.json").is_file()
    assert pairwise_accuracy(target, test) >= 0.85


def test_a_reward_model_starts_from_a_base_model(tmp_path, settings, preference_files):
    pairs = load_examples(preference_files["train"], task="preference")
    spec = TuningSpec(base_model=TINY, method="reward", init_adapter=str(tmp_path / "some-adapter"))
    with pytest.raises(TuningError, match="tuned from a base model"):
        run_tuning(spec, pairs, [], tmp_path / "run", settings)

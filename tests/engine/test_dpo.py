"""Preference tuning (DPO) on the tiny model, the usual recipe: SFT first, then preferences.

After DPO the policy ranks held-out pairs better and answers no worse; the reference costs no
second copy of the model; full weights train too. Continue tuning (Vertex's preTunedModel)
starts from a tuned adapter, for SFT as for DPO.
"""

from __future__ import annotations

import math

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.engine.conftest import RecordingObserver
from tests.helpers import exact_match
from tuneforge.data.records import PreferenceExample
from tuneforge.data.samples import write_preference_task
from tuneforge.data.tokenize import IGNORE_INDEX, tokenize_conversation, with_response
from tuneforge.data.validate import load_examples
from tuneforge.engine.errors import TuningError
from tuneforge.engine.methods.preference.trainer import prepare_dpo
from tuneforge.engine.run import run_tuning
from tuneforge.engine.spec import Hyperparameters, TuningSpec

TINY = "tuneforge/tiny-chat"
REWARD_KEYS = ("rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected")


@pytest.fixture(scope="module")
def preference(tmp_path_factory) -> dict[str, list[PreferenceExample]]:
    """The sentiment task's prompts (the same as the ``sentiment`` fixture's) as pairs."""
    paths = write_preference_task(tmp_path_factory.mktemp("preference"))
    return {split: load_examples(path, task="preference") for split, path in paths.items()}


def tune_sft_then_dpo(sentiment, preference, settings, output, seed: int = 42):
    """Two SFT epochs leave the policy part-way (0.63-0.96 exact match over seeds); DPO goes on
    from there."""
    sft = run_tuning(
        TuningSpec(base_model=TINY, seed=seed, hyperparameters=Hyperparameters(epochs=2)),
        sentiment["train"],
        sentiment["validation"],
        output / "sft",
        settings,
    )
    observer = RecordingObserver()
    spec = TuningSpec(
        base_model=TINY,
        seed=seed,
        method="preference",
        init_adapter=str(sft.default_checkpoint.path),
        hyperparameters=Hyperparameters(epochs=2),
    )
    dpo = run_tuning(
        spec,
        preference["train"],
        preference["validation"],
        output / "dpo",
        settings,
        observer,
    )
    return sft, dpo, observer


@pytest.fixture(scope="module")
def sft_then_dpo(sentiment, preference, session_settings, tmp_path_factory):
    output = tmp_path_factory.mktemp("sft-then-dpo")
    return tune_sft_then_dpo(sentiment, preference, session_settings, output)


def load_tuned(models_dir, adapter):
    base = AutoModelForCausalLM.from_pretrained(models_dir / "tiny-chat")
    return PeftModel.from_pretrained(base, adapter).eval()


def response_log_prob(model, tokenizer, pair: PreferenceExample, response: str) -> float:
    tokenized = tokenize_conversation(with_response(pair.prompt, response), tokenizer)
    labels = torch.tensor(tokenized.labels[1:])
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([tokenized.input_ids])).logits[0, :-1]
    scored = labels != IGNORE_INDEX
    log_probs = torch.log_softmax(logits[scored], dim=-1)
    return log_probs.gather(-1, labels[scored].unsqueeze(-1)).sum().item()


def reward_accuracy(model, tokenizer, pairs: list[PreferenceExample]) -> float:
    """Share of pairs whose chosen response is likelier than the rejected one."""
    wins = sum(
        response_log_prob(model, tokenizer, p, p.chosen)
        > response_log_prob(model, tokenizer, p, p.rejected)
        for p in pairs
    )
    return wins / len(pairs)


# Seed 2 leaves SFT furthest behind (0.63 exact match): the hardest start. Without the NLL term
# (engine/dpo.py) seeds 1 and 3 collapsed to 0.17 and 0.40; with it seeds 1-5 and 42 reach
# 0.91-0.99 exact match and 0.92-1.0 reward accuracy.
@pytest.mark.parametrize("seed", [42, 2])
def test_dpo_after_sft_ranks_held_out_pairs_better_and_answers_no_worse(
    seed, sft_then_dpo, sentiment, preference, session_settings, models_dir, tmp_path
):
    if seed == 42:
        sft, dpo, _ = sft_then_dpo
    else:
        sft, dpo, _ = tune_sft_then_dpo(sentiment, preference, session_settings, tmp_path, seed)
    tokenizer = AutoTokenizer.from_pretrained(models_dir / "tiny-chat")
    before = load_tuned(models_dir, sft.default_checkpoint.path)
    after = load_tuned(models_dir, dpo.default_checkpoint.path)
    accuracy_before = reward_accuracy(before, tokenizer, preference["test"])
    accuracy_after = reward_accuracy(after, tokenizer, preference["test"])
    match_before = exact_match(before, tokenizer, sentiment["test"])
    match_after = exact_match(after, tokenizer, sentiment["test"])
    print(
        f"\nheld-out reward accuracy {accuracy_before:.2f} -> {accuracy_after:.2f}, "
        f"exact match {match_before:.2f} -> {match_after:.2f}"
    )
    assert accuracy_after > accuracy_before
    assert accuracy_after >= 0.9
    assert match_after >= match_before


def test_dpo_reports_reward_metrics_and_keeps_only_the_trained_adapter(sft_then_dpo, models_dir):
    _, dpo, observer = sft_then_dpo
    assert dpo.outcome == "succeeded"
    assert observer.plans[0].train_examples == 400 and observer.plans[0].epochs == 2
    # The reference is the starting (SFT) adapter: before the first update, policy and
    # reference agree and every reward is 0. The loss is then DPO's -log(sigmoid(0)) plus the
    # chosen answers' NLL (RPO's term), which the SFT adapter already keeps small.
    first = observer.steps[0]
    assert first.extra["rewards/margins"] == pytest.approx(0.0, abs=1e-4)
    assert first.extra["rewards/chosen"] == pytest.approx(0.0, abs=1e-4)
    assert math.log(2) < first.loss < math.log(2) + 0.5
    assert any("frozen copy of the starting adapter" in e for e in observer.events)
    for step in observer.steps:
        assert set(REWARD_KEYS) <= step.extra.keys()
    assert observer.steps[-1].extra["rewards/margins"] > 0
    for epoch in observer.epochs:
        assert epoch.valid_loss is not None
        assert {"rewards/accuracies", "rewards/margins"} <= epoch.extra.keys()
        assert {"eval_rewards/accuracies", "eval_rewards/margins"} <= epoch.extra.keys()
    losses = {e.epoch: e.valid_loss for e in dpo.epochs}
    assert dpo.default_checkpoint.epoch == min(losses, key=losses.get)
    for checkpoint in dpo.checkpoints:
        assert (checkpoint.path / "adapter_model.safetensors").is_file()
        assert not (checkpoint.path / "ref").exists()
        load_tuned(models_dir, checkpoint.path)


def test_lora_dpo_keeps_one_copy_of_the_base(sft_then_dpo, preference, session_settings, tmp_path):
    """No reference model is loaded: the adapter is disabled (a new adapter) or swapped for a
    frozen copy of itself (going on from a tuned one)."""
    sft, _, _ = sft_then_dpo
    pairs = preference["train"][:16]
    fresh = prepare_dpo(
        TuningSpec(base_model=TINY, method="preference"),
        pairs,
        [],
        tmp_path / "fresh",
        RecordingObserver(),
        session_settings,
    )
    assert fresh.trainer.ref_model is None
    assert list(fresh.trainer.model.peft_config) == ["default"]
    going_on = prepare_dpo(
        TuningSpec(
            base_model=TINY, method="preference", init_adapter=str(sft.default_checkpoint.path)
        ),
        pairs,
        [],
        tmp_path / "going-on",
        RecordingObserver(),
        session_settings,
    )
    assert going_on.trainer.ref_model is None
    assert set(going_on.trainer.model.peft_config) == {"default", "ref"}


def test_full_weights_dpo_starts_from_the_merged_tuned_model(
    sft_then_dpo, preference, settings, tmp_path, models_dir
):
    sft, _, _ = sft_then_dpo
    observer = RecordingObserver()
    spec = TuningSpec(
        base_model=TINY,
        method="preference",
        mode="full",
        init_adapter=str(sft.default_checkpoint.path),
        hyperparameters=Hyperparameters(epochs=1, batch_size=8),
    )
    result = run_tuning(spec, preference["train"][:32], [], tmp_path / "full", settings, observer)
    assert result.outcome == "succeeded" and result.steps == 4
    # The reference log-probabilities are those of the merged SFT model, the starting weights:
    # before the first update every reward is 0.
    assert observer.steps[0].extra["rewards/margins"] == pytest.approx(0.0, abs=1e-4)
    assert observer.steps[0].extra["rewards/chosen"] == pytest.approx(0.0, abs=1e-4)
    assert any("computed once before training" in e for e in observer.events)
    assert result.trained_tokens > 0
    tuned = AutoModelForCausalLM.from_pretrained(result.default_checkpoint.path)
    base = AutoModelForCausalLM.from_pretrained(models_dir / "tiny-chat")
    assert any(
        not torch.equal(a, b)
        for a, b in zip(tuned.state_dict().values(), base.state_dict().values(), strict=True)
    )


def test_sft_goes_on_from_a_tuned_adapter(sft_then_dpo, sentiment, settings, tmp_path):
    """Continue tuning: the first step of a run from the SFT adapter already has its low loss."""
    sft, _, _ = sft_then_dpo
    train = sentiment["train"][:16]
    spec = TuningSpec(base_model=TINY, hyperparameters=Hyperparameters(epochs=1, batch_size=8))
    fresh, going_on = RecordingObserver(), RecordingObserver()
    run_tuning(spec, train, [], tmp_path / "fresh", settings, fresh)
    continued = spec.model_copy(update={"init_adapter": str(sft.default_checkpoint.path)})
    result = run_tuning(continued, train, [], tmp_path / "going-on", settings, going_on)
    assert going_on.steps[0].loss < fresh.steps[0].loss / 3
    assert (result.default_checkpoint.path / "adapter_model.safetensors").is_file()


def test_preference_tuning_needs_preference_pairs(sentiment, settings, tmp_path):
    spec = TuningSpec(base_model=TINY, method="preference")
    with pytest.raises(TuningError, match="trains on preference pairs") as caught:
        run_tuning(spec, sentiment["train"][:8], [], tmp_path / "pairs", settings)
    assert caught.value.code == "invalid_training_file"


def test_paused_dpo_resumes_where_an_uninterrupted_run_ends(
    sft_then_dpo, preference, settings, tmp_path
):
    """Going on from a tuned adapter, a resumed run rebuilds the same frozen reference."""
    sft, _, _ = sft_then_dpo
    train, validation = preference["train"][:48], preference["validation"][:12]
    spec = TuningSpec(
        base_model=TINY,
        method="preference",
        init_adapter=str(sft.default_checkpoint.path),
        hyperparameters=Hyperparameters(epochs=2, batch_size=4),
    )
    straight = run_tuning(spec, train, validation, tmp_path / "straight", settings)
    paused_dir = tmp_path / "paused"
    paused = run_tuning(
        spec,
        train,
        validation,
        paused_dir,
        settings,
        RecordingObserver(stop_at_step=15, stop_with="pause"),
    )
    assert paused.outcome == "paused" and paused.steps == 16
    resumed = run_tuning(spec, train, validation, paused_dir, settings)
    assert resumed.outcome == "succeeded"
    for a, b in zip(straight.epochs, resumed.epochs, strict=True):
        assert a.valid_loss == pytest.approx(b.valid_loss, rel=1e-4)
    assert straight.step_losses[-1][1] == pytest.approx(resumed.step_losses[-1][1], rel=1e-4)

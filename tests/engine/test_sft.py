"""Supervised fine-tuning on the tiny model: it learns, checkpoints load, runs stop and resume."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from tests.engine.conftest import RecordingObserver
from tests.helpers import exact_match
from tuneforge.data.records import Conversation, Turn
from tuneforge.data.tokenize import tokenize_conversation
from tuneforge.engine.errors import TuningError
from tuneforge.engine.run import run_tuning
from tuneforge.engine.spec import Hyperparameters, TuningSpec
from tuneforge.errors import ModelNotFound

TINY = "tuneforge/tiny-chat"


@pytest.fixture(scope="session")
def lora_run(sentiment, session_settings, tmp_path_factory):
    observer = RecordingObserver()
    output = tmp_path_factory.mktemp("lora-run")
    result = run_tuning(
        TuningSpec(base_model=TINY, hyperparameters=Hyperparameters(epochs=5)),
        sentiment["train"],
        sentiment["validation"],
        output,
        session_settings,
        observer,
    )
    return result, observer


def load_base(models_dir):
    return AutoModelForCausalLM.from_pretrained(models_dir / "tiny-chat")


def test_lora_sft_lifts_held_out_exact_match(lora_run, sentiment, models_dir):
    result, _ = lora_run
    tokenizer = AutoTokenizer.from_pretrained(models_dir / "tiny-chat")
    before = exact_match(load_base(models_dir), tokenizer, sentiment["test"])
    tuned = PeftModel.from_pretrained(load_base(models_dir), result.default_checkpoint.path)
    after = exact_match(tuned, tokenizer, sentiment["test"])
    assert before < 0.1
    assert after >= 0.9


def test_every_epoch_checkpoint_loads_with_plain_peft(lora_run, models_dir):
    result, observer = lora_run
    assert result.outcome == "succeeded"
    assert [c.epoch for c in result.checkpoints] == list(range(1, len(result.epochs) + 1))
    assert [c.path.name for c in result.checkpoints][:2] == ["epoch-1", "epoch-2"]
    for checkpoint in result.checkpoints:
        assert (checkpoint.path / "adapter_model.safetensors").is_file()
        model = PeftModel.from_pretrained(load_base(models_dir), checkpoint.path)
        assert model.peft_config["default"].r == 8
        assert AutoTokenizer.from_pretrained(checkpoint.path).chat_template
    assert [c.path for c in observer.checkpoints] == [c.path for c in result.checkpoints]


def test_default_checkpoint_has_lowest_validation_loss(lora_run):
    result, _ = lora_run
    losses = {e.epoch: e.valid_loss for e in result.epochs}
    assert None not in losses.values()
    assert result.default_checkpoint.epoch == min(losses, key=losses.get)
    assert "lowest validation loss" in result.default_reason


def test_step_and_epoch_metrics_are_reported(lora_run):
    result, observer = lora_run
    plan = observer.plans[0]
    assert plan.total_steps == 250 and plan.epochs == 5  # 400 examples, batch 8 (auto)
    assert len(observer.steps) == 50 * len(result.epochs)
    step = observer.steps[10]
    assert step.loss > 0 and step.learning_rate > 0 and step.grad_norm is not None
    assert step.tokens_per_second > 0 and step.eta_s is not None
    assert step.non_padding_share == 1.0  # padding-free batches
    assert observer.steps[0].loss > observer.steps[-1].loss
    assert [e.epoch for e in observer.epochs] == list(range(1, len(result.epochs) + 1))
    assert all(e.valid_token_accuracy is not None for e in observer.epochs)
    assert result.trained_tokens > 0 and result.tokens_per_second > 0


def test_full_fine_tuning_writes_loadable_weights(sentiment, settings, tmp_path, models_dir):
    spec = TuningSpec(base_model=TINY, mode="full", hyperparameters=Hyperparameters(epochs=1))
    result = run_tuning(spec, sentiment["train"][:80], [], tmp_path / "full", settings)
    checkpoint = result.default_checkpoint
    assert "no validation loss" in result.default_reason
    assert (checkpoint.path / "model.safetensors").is_file()
    tuned = AutoModelForCausalLM.from_pretrained(checkpoint.path)
    base = load_base(models_dir)
    changed = any(
        not torch.equal(a, b)
        for a, b in zip(tuned.state_dict().values(), base.state_dict().values(), strict=True)
    )
    assert changed


def test_early_stopping_stops_when_validation_loss_rises(sentiment, settings, tmp_path):
    """Validation labels are flipped: the better the model learns, the worse it validates."""
    flip = {"positive": "negative", "negative": "positive"}
    contrary = [
        Conversation(system=e.system, turns=(e.turns[0], Turn("model", flip[e.turns[1].text])))
        for e in sentiment["validation"]
    ]
    observer = RecordingObserver()
    spec = TuningSpec(
        base_model=TINY, hyperparameters=Hyperparameters(epochs=8, early_stopping_patience=1)
    )
    result = run_tuning(spec, sentiment["train"], contrary, tmp_path / "early", settings, observer)
    assert result.stopped_early
    assert len(result.epochs) < 8
    assert any("early stop" in e for e in observer.events)
    losses = {e.epoch: e.valid_loss for e in result.epochs}
    assert result.default_checkpoint.epoch == min(losses, key=losses.get)


def test_cancel_stops_at_a_step_and_keeps_completed_epochs(sentiment, settings, tmp_path):
    observer = RecordingObserver(stop_at_step=60, stop_with="cancel")
    spec = TuningSpec(base_model=TINY)
    result = run_tuning(spec, sentiment["train"], [], tmp_path / "cancel", settings, observer)
    assert result.outcome == "cancelled"
    # Asked once step 60 was reported; it takes effect at the next step boundary.
    assert result.steps == 61
    assert [c.path.name for c in result.checkpoints] == ["epoch-1"]
    assert (result.checkpoints[0].path / "adapter_model.safetensors").is_file()


def test_pause_then_resume_ends_where_an_uninterrupted_run_ends(
    sentiment, settings, tmp_path, models_dir
):
    train, validation = sentiment["train"][:120], sentiment["validation"][:20]
    spec = TuningSpec(base_model=TINY, hyperparameters=Hyperparameters(epochs=2, batch_size=4))

    straight = run_tuning(spec, train, validation, tmp_path / "straight", settings)

    paused_dir = tmp_path / "paused"
    observer = RecordingObserver(stop_at_step=37, stop_with="pause")
    paused = run_tuning(spec, train, validation, paused_dir, settings, observer)
    assert paused.outcome == "paused" and paused.steps == 38
    assert (paused_dir / "checkpoints" / "step-38").is_dir()

    resumer = RecordingObserver()
    resumed = run_tuning(spec, train, validation, paused_dir, settings, resumer)
    assert resumed.outcome == "succeeded"
    assert resumer.plans[0].resumed_from_step == 38
    assert any("resuming from step-38" in e for e in resumer.events)
    assert [c.epoch for c in resumed.checkpoints] == [1, 2]
    assert not (paused_dir / "checkpoints" / "step-38").exists()
    for a, b in zip(straight.epochs, resumed.epochs, strict=True):
        assert a.valid_loss == pytest.approx(b.valid_loss, rel=1e-3)
    assert straight.step_losses[-1][1] == pytest.approx(resumed.step_losses[-1][1], rel=1e-3)
    # Training tokens of the whole run (both attempts), no validation tokens.
    tokenizer = AutoTokenizer.from_pretrained(models_dir / "tiny-chat")
    per_epoch = sum(len(tokenize_conversation(e, tokenizer, 2048).input_ids) for e in train)
    assert straight.trained_tokens == resumed.trained_tokens == 2 * per_epoch
    assert resumed.tokens_per_second > 0


@pytest.fixture
def count_evaluations(monkeypatch) -> list[int]:
    from transformers import Trainer

    calls: list[int] = []
    evaluate = Trainer._evaluate

    def counted(self, *args, **kwargs):
        calls.append(self.state.global_step)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_evaluate", counted)
    return calls


def test_cancel_neither_evaluates_nor_saves_again(sentiment, settings, tmp_path, count_evaluations):
    train, validation = sentiment["train"][:120], sentiment["validation"][:20]
    spec = TuningSpec(base_model=TINY, hyperparameters=Hyperparameters(epochs=2, batch_size=4))
    observer = RecordingObserver(stop_at_step=36, stop_with="cancel")
    result = run_tuning(spec, train, validation, tmp_path / "cancel", settings, observer)
    assert result.outcome == "cancelled" and result.steps == 37
    assert count_evaluations == [30]  # epoch 1's only
    assert [(c.kind, c.step) for c in observer.checkpoints] == [("epoch", 30)]
    assert [p.name for p in (tmp_path / "cancel" / "checkpoints").glob("*-*")] == ["epoch-1"]


def test_pause_saves_once_and_a_cancel_after_resuming_drops_the_resume_point(
    sentiment, settings, tmp_path, count_evaluations
):
    train, validation = sentiment["train"][:120], sentiment["validation"][:20]
    spec = TuningSpec(base_model=TINY, hyperparameters=Hyperparameters(epochs=3, batch_size=4))
    output = tmp_path / "run"
    observer = RecordingObserver(stop_at_step=36, stop_with="pause")
    paused = run_tuning(spec, train, validation, output, settings, observer)
    assert paused.outcome == "paused" and paused.steps == 37
    assert count_evaluations == [30]
    assert [(c.kind, c.step) for c in observer.checkpoints] == [("epoch", 30), ("resume", 37)]

    observer = RecordingObserver(stop_at_step=70, stop_with="cancel")
    cancelled = run_tuning(spec, train, validation, output, settings, observer)
    assert cancelled.outcome == "cancelled" and cancelled.steps == 71
    assert sorted(p.name for p in (output / "checkpoints").glob("*-*")) == ["epoch-1", "epoch-2"]


def test_a_pause_on_an_epochs_last_step_keeps_that_epoch(sentiment, settings, tmp_path):
    train, validation = sentiment["train"][:120], sentiment["validation"][:20]
    spec = TuningSpec(base_model=TINY, hyperparameters=Hyperparameters(epochs=2, batch_size=4))
    output = tmp_path / "run"
    # Asked once step 29 was reported: it lands on step 30, epoch 1's last.
    observer = RecordingObserver(stop_at_step=29, stop_with="pause")
    paused = run_tuning(spec, train, validation, output, settings, observer)
    assert paused.outcome == "paused" and paused.steps == 30
    assert [e.epoch for e in observer.epochs] == [1]
    assert observer.epochs[0].valid_loss is not None
    assert [(c.kind, c.path.name) for c in observer.checkpoints] == [("epoch", "epoch-1")]

    resumer = RecordingObserver()
    resumed = run_tuning(spec, train, validation, output, settings, resumer)
    assert resumed.outcome == "succeeded"
    assert resumer.plans[0].resumed_from_step == 30
    assert [e.epoch for e in resumed.epochs] == [1, 2]
    assert [c.path.name for c in resumed.checkpoints] == ["epoch-1", "epoch-2"]


def test_a_pause_on_the_last_step_lets_the_run_complete(sentiment, settings, tmp_path):
    train = sentiment["train"][:40]
    spec = TuningSpec(base_model=TINY, hyperparameters=Hyperparameters(epochs=1, batch_size=4))
    observer = RecordingObserver(stop_at_step=9, stop_with="pause")
    result = run_tuning(spec, train, [], tmp_path / "run", settings, observer)
    assert result.outcome == "succeeded" and result.steps == 10
    assert [c.path.name for c in result.checkpoints] == ["epoch-1"]


def test_unknown_model_fails_before_training(sentiment, settings, tmp_path):
    with pytest.raises(ModelNotFound, match="unknown base model"):
        run_tuning(
            TuningSpec(base_model="no-such-org/no-such-model"),
            sentiment["train"],
            [],
            tmp_path / "unknown",
            settings,
        )
    assert not (tmp_path / "unknown" / "checkpoints").exists()


def test_tokenizer_that_does_not_fit_the_model_fails_before_training(
    sentiment, settings, tmp_path, models_dir
):
    """A model folder whose embeddings are smaller than its tokenizer's vocabulary."""
    root = tmp_path / "roots"
    folder = root / "mismatched"
    config = LlamaConfig(
        vocab_size=50,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(models_dir / "tiny-chat").save_pretrained(folder)
    settings = settings.model_copy(update={"model_roots": [root]})
    with pytest.raises(TuningError, match="does not belong to this model"):
        run_tuning(
            TuningSpec(base_model=str(folder)), sentiment["train"], [], tmp_path / "x", settings
        )

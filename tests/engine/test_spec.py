import pytest
from pydantic import ValidationError

from tuneforge.engine.spec import (
    Hyperparameters,
    auto_batch_size,
    auto_epochs,
    default_learning_rate,
    resolve_hyperparameters,
)
from tuneforge.errors import InvalidArgument


def test_learning_rate_and_multiplier_together_are_refused():
    with pytest.raises(InvalidArgument, match="not both") as caught:
        Hyperparameters(learning_rate=1e-4, learning_rate_multiplier=2.0)
    assert caught.value.param == "learning_rate_multiplier"


@pytest.mark.parametrize("size", [0, 3, 64])
def test_adapter_size_must_be_a_supported_rank(size):
    with pytest.raises(InvalidArgument, match="adapter_size must be one of"):
        Hyperparameters(adapter_size=size)


def test_unknown_hyperparameter_is_refused():
    with pytest.raises(ValidationError):
        Hyperparameters(epoch_count=3)


def test_auto_epochs_follow_openai_guide():
    assert auto_epochs(10) == 10  # 100 examples seen at least
    assert auto_epochs(400) == 3
    assert auto_epochs(20_000) == 1
    assert auto_epochs(1) == 25


def test_a_distilled_student_gets_twice_the_passes_within_the_cap():
    assert auto_epochs(400, "distillation") == 6
    assert auto_epochs(20_000, "distillation") == 2
    assert auto_epochs(10, "distillation") == 20
    assert auto_epochs(1, "distillation") == 25


def test_auto_batch_size_grows_with_dataset_and_is_bounded():
    assert auto_batch_size(20) == 1
    assert auto_batch_size(400) == 8
    assert auto_batch_size(1_000_000) == 64


def test_default_learning_rate_is_the_usual_one_for_7b_models_and_scales_with_width():
    assert default_learning_rate("peft", 4096) == pytest.approx(2e-4)
    assert default_learning_rate("full", 4096) == pytest.approx(2e-5)
    assert default_learning_rate("peft", 2048) == pytest.approx(4e-4)
    assert default_learning_rate("peft", 64) == pytest.approx(2e-4 * 32)  # capped
    assert default_learning_rate("peft", 16384) == pytest.approx(1e-4)  # floor at half


@pytest.mark.parametrize(
    "hidden_size",
    [896, 1536, 2048, 3584, 4096],  # Qwen2.5-0.5B, -1.5B, -3B, -7B; Llama 3.1 8B
)
def test_full_fine_tuning_rate_is_the_published_recipes_one_from_half_a_billion_to_8b(
    hidden_size,
):
    # Full-SFT recipes (torchtune, TRL, alignment-handbook) use 5e-6 to 2e-5 at these sizes,
    # whatever the width; the width rule from 4096 gave Qwen2.5-0.5B 9.1e-5.
    assert default_learning_rate("full", hidden_size) == pytest.approx(2e-5)
    resolved = resolve_hyperparameters(Hyperparameters(), "full", 400, hidden_size=hidden_size)
    assert resolved.learning_rate == pytest.approx(2e-5)


def test_full_fine_tuning_of_models_narrower_than_any_recipe_scales_from_the_narrowest():
    assert default_learning_rate("full", 448) == pytest.approx(4e-5)
    assert default_learning_rate("full", 64) == pytest.approx(2e-5 * 896 / 64)
    assert default_learning_rate("full", 16) == pytest.approx(2e-5 * 32)  # capped


def test_multiplier_scales_the_default_and_explicit_rate_wins():
    scaled = resolve_hyperparameters(
        Hyperparameters(learning_rate_multiplier=0.5), "peft", 400, hidden_size=4096
    )
    assert scaled.learning_rate == pytest.approx(1e-4)
    explicit = resolve_hyperparameters(Hyperparameters(learning_rate=3e-5), "peft", 400)
    assert explicit.learning_rate == pytest.approx(3e-5)


def test_max_seq_length_is_capped_by_the_model():
    resolved = resolve_hyperparameters(Hyperparameters(), "peft", 400, model_max_length=512)
    assert resolved.max_seq_length == 512
    assert resolved.epochs == 3 and resolved.batch_size == 8


@pytest.mark.parametrize(
    "logs",
    [{"loss": float("nan"), "grad_norm": 1.0}, {"loss": 2.0, "grad_norm": float("inf")}],
)
def test_a_non_finite_loss_or_gradient_fails_the_run_naming_the_learning_rate(logs, tmp_path):
    from types import SimpleNamespace

    from tuneforge.engine.callbacks import TokenCounter, TuningCallback
    from tuneforge.engine.errors import TuningError
    from tuneforge.engine.observer import TuningObserver

    callback = TuningCallback(TuningObserver(), TokenCounter(None), tmp_path, patience=2)
    state = SimpleNamespace(global_step=7, max_steps=10, epoch=1.0)
    args = SimpleNamespace(learning_rate=0.5)
    with pytest.raises(TuningError, match="diverged at step 7") as caught:
        callback.on_log(args, state, None, logs={**logs, "learning_rate": 0.25})
    assert caught.value.code == "diverged"
    assert "lower the learning rate (peak 0.5, 0.25 at this step)" in str(caught.value)

"""Distillation on the tiny models: tiny-chat-large, tuned on the sentiment task, teaches
tiny-chat from prompts alone (the teacher writes the responses)."""

from __future__ import annotations

import pytest
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from tests.engine.conftest import RecordingObserver
from tests.helpers import exact_match
from tuneforge.data.records import Conversation
from tuneforge.engine.attention import PACKED_SDPA
from tuneforge.engine.errors import TuningError
from tuneforge.engine.methods.distillation.config import DistillationHyperparameters
from tuneforge.engine.methods.distillation.trainer import prepare_distillation, teacher_responses
from tuneforge.engine.run import run_tuning
from tuneforge.engine.spec import Hyperparameters, TuningSpec
from tuneforge.models.loading import load_causal_lm

TINY = "tuneforge/tiny-chat"
LARGE = "tuneforge/tiny-chat-large"


def prompts_of(examples: list[Conversation]) -> list[Conversation]:
    return [Conversation(turns=e.turns[:-1], system=e.system) for e in examples]


@pytest.fixture(scope="module")
def teacher_adapter(sentiment, session_settings, tmp_path_factory):
    result = run_tuning(
        TuningSpec(base_model=LARGE, hyperparameters=Hyperparameters(epochs=4)),
        sentiment["train"],
        sentiment["validation"],
        tmp_path_factory.mktemp("teacher"),
        session_settings,
    )
    return result.default_checkpoint.path


def distillation_spec(teacher_adapter, **hyperparameters) -> TuningSpec:
    return TuningSpec(
        base_model=TINY,
        method="distillation",
        teacher_model=LARGE,
        teacher_adapter=str(teacher_adapter),
        hyperparameters=DistillationHyperparameters(**hyperparameters),
    )


# 8 epochs: at 3, 2 of 5 seeds left the student at 0.80 and 0.90 of the teacher's exact match; at 8,
# seeds 1-10 reached 0.97-1.0 of it on one machine (early stopping ends some runs at 6-7). On an
# AMD EPYC, seeds 1-7 reached 0.98-1.0 of the teacher's 0.99, but seed 42 stopped at epoch 5
# keeping epoch 3 and reached 0.93 (0.94 of it). So each seed must reach 0.9 of the teacher, and
# the seeds on average 0.95 of it: float differences between CPUs move a run by an epoch.
STUDENT_EPOCHS = 8
STUDENT_FLOOR_SHARE_OF_TEACHER = 0.9
STUDENT_MEAN_SHARE_OF_TEACHER = 0.95
SEEDS = (42, 1, 2)


def distill(teacher_adapter, sentiment, settings, output, seed: int, observer=None):
    return run_tuning(
        distillation_spec(teacher_adapter, epochs=STUDENT_EPOCHS).model_copy(update={"seed": seed}),
        prompts_of(sentiment["train"]),
        prompts_of(sentiment["validation"]),
        output,
        settings,
        observer,
    )


@pytest.fixture(scope="module")
def distilled(teacher_adapter, sentiment, session_settings, tmp_path_factory):
    observer = RecordingObserver()
    output = tmp_path_factory.mktemp("student")
    return distill(teacher_adapter, sentiment, session_settings, output, 42, observer), observer


def test_students_reach_most_of_the_teachers_exact_match_over_seeds(
    teacher_adapter, distilled, sentiment, session_settings, models_dir, tmp_path
):
    tokenizer = AutoTokenizer.from_pretrained(models_dir / "tiny-chat")
    teacher_base = AutoModelForCausalLM.from_pretrained(models_dir / "tiny-chat-large")
    teacher = PeftModel.from_pretrained(teacher_base, teacher_adapter)
    teacher_match = exact_match(teacher, tokenizer, sentiment["test"])
    untrained = exact_match(
        AutoModelForCausalLM.from_pretrained(models_dir / "tiny-chat"), tokenizer, sentiment["test"]
    )
    students = {}
    for seed in SEEDS:
        result = (
            distilled[0]
            if seed == 42
            else distill(teacher_adapter, sentiment, session_settings, tmp_path / str(seed), seed)
        )
        student_base = AutoModelForCausalLM.from_pretrained(models_dir / "tiny-chat")
        student = PeftModel.from_pretrained(student_base, result.default_checkpoint.path)
        students[seed] = exact_match(student, tokenizer, sentiment["test"])
    print(f"\nexact match: teacher {teacher_match:.2f}, students {untrained} -> {students}")
    assert teacher_match >= 0.9
    for seed, match in students.items():
        assert match >= STUDENT_FLOOR_SHARE_OF_TEACHER * teacher_match, seed
    mean = sum(students.values()) / len(students)
    assert mean >= STUDENT_MEAN_SHARE_OF_TEACHER * teacher_match


def test_teacher_writes_responses_and_training_is_reported(distilled):
    result, observer = distilled
    assert result.outcome == "succeeded"
    assert any("teacher is answering 400 training prompts" in e for e in observer.events)
    assert any("teacher is answering 50 validation prompts" in e for e in observer.events)
    plan = observer.plans[0]
    assert plan.train_examples == 400 and plan.validation_examples == 50
    assert all(step.non_padding_share == 1.0 for step in observer.steps)  # padding-free
    assert observer.steps[-1].loss < observer.steps[0].loss
    assert all(e.valid_loss is not None for e in observer.epochs)
    assert observer.epochs[-1].valid_token_accuracy > 0.9
    assert (result.default_checkpoint.path / "adapter_model.safetensors").is_file()


def test_teacher_answers_padded_prompts_as_plain_attention_does(sentiment, models_dir):
    """The packed kernel of padding-free training gets no padding mask; batched generation
    (prompts padded on the left) must not run on it."""
    source = models_dir / "tiny-chat-large"
    tokenizer = AutoTokenizer.from_pretrained(source)
    packed = load_causal_lm(source, attn_implementation=PACKED_SDPA).eval()
    plain = load_causal_lm(source, attn_implementation="sdpa").eval()
    prompts = prompts_of(sentiment["test"][:32])
    answers = teacher_responses(packed, tokenizer, prompts, max_length=256, batch_size=16)
    assert answers == teacher_responses(plain, tokenizer, prompts, max_length=256, batch_size=16)
    assert packed.config._attn_implementation == PACKED_SDPA  # back for training


@pytest.mark.parametrize(
    ("divergence", "beta"), [("forward_kl", 0.0), ("reverse_kl", 1.0), ("jsd", 0.5)]
)
def test_divergence_choice_reaches_the_trainer(
    divergence, beta, teacher_adapter, sentiment, session_settings, tmp_path
):
    run = prepare_distillation(
        distillation_spec(teacher_adapter, divergence=divergence),
        sentiment["train"][:8],
        [],
        tmp_path,
        RecordingObserver(),
        session_settings,
    )
    assert run.trainer.beta == beta
    assert run.trainer.lmbda == 0.0  # trained on the given responses, never on its own
    assert run.plan.hyperparameters["divergence"] == divergence


def test_full_weights_student_of_a_full_weights_tuned_teacher(sentiment, settings, tmp_path):
    """A tuned teacher may be full weights: its checkpoint folder replaces the base's."""
    tuned = run_tuning(
        TuningSpec(base_model=LARGE, mode="full", hyperparameters=Hyperparameters(epochs=1)),
        sentiment["train"][:16],
        [],
        tmp_path / "teacher",
        settings,
    )
    spec = TuningSpec(
        base_model=TINY,
        method="distillation",
        mode="full",
        teacher_model=LARGE,
        teacher_adapter=str(tuned.default_checkpoint.path),
        hyperparameters=DistillationHyperparameters(epochs=1, batch_size=8, divergence="jsd"),
    )
    result = run_tuning(spec, sentiment["train"][:16], [], tmp_path / "student", settings)
    assert result.outcome == "succeeded" and result.steps == 2
    assert (result.default_checkpoint.path / "model.safetensors").is_file()


def build_model(folder, tokenizer, vocab_size: int) -> None:
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


@pytest.mark.parametrize("difference", ["tokenizer", "embeddings"])
def test_teacher_with_another_vocabulary_is_refused_before_training(
    difference, sentiment, settings, tmp_path, models_dir
):
    tokenizer = AutoTokenizer.from_pretrained(models_dir / "tiny-chat")
    if difference == "tokenizer":
        tokenizer.add_tokens(["<|tool|>", "<|image|>"])
        vocab_size = len(tokenizer)
    else:  # the student's tokenizer, embeddings padded to a round size
        vocab_size = len(tokenizer) + 64
    root = tmp_path / "roots"
    build_model(root / "teacher", tokenizer, vocab_size)
    settings = settings.model_copy(update={"model_roots": [root]})
    spec = TuningSpec(base_model=TINY, method="distillation", teacher_model=str(root / "teacher"))
    output = tmp_path / "refused"
    with pytest.raises(TuningError, match="vocabulary") as caught:
        run_tuning(spec, prompts_of(sentiment["train"][:8]), [], output, settings)
    assert caught.value.code == "invalid_teacher"
    assert not (output / "checkpoints").exists()


def test_distillation_needs_a_teacher(sentiment, settings, tmp_path):
    spec = TuningSpec(base_model=TINY, method="distillation")
    with pytest.raises(TuningError, match="needs a teacher") as caught:
        run_tuning(spec, sentiment["train"][:8], [], tmp_path / "none", settings)
    assert caught.value.code == "invalid_teacher"

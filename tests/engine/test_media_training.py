"""Supervised tuning of the tiny media models through the engine: the hyperparameters resolve
from the language model's own config, and a run trains and saves an adapter the base loads."""

from __future__ import annotations

import json

from tuneforge.data.media_samples import media_examples, to_vertex
from tuneforge.data.validate import validate_dataset
from tuneforge.engine.run import run_tuning
from tuneforge.engine.spec import TuningSpec
from tuneforge.engine.training import load_base_for_training, resolve_for_model


def examples(kind: str, count: int):
    lines = "\n".join(json.dumps(to_vertex(e)) for e in media_examples(kind, count, seed=3))
    return validate_dataset(lines.encode(), min_examples=1).examples


def test_a_media_models_defaults_follow_its_language_models_width_and_context(settings):
    spec = TuningSpec(base_model="tuneforge/tiny-vision", method="supervised", mode="peft")
    base = load_base_for_training(spec, settings)
    assert base.processor is not None
    hp = resolve_for_model(spec, base.model, 200)
    # LLaVA's config nests the Llama's: 64 wide, 512 positions, as tiny-chat.
    chat = TuningSpec(base_model="tuneforge/tiny-chat", method="supervised", mode="peft")
    text_hp = resolve_for_model(chat, load_base_for_training(chat, settings).model, 200)
    assert hp.learning_rate == text_hp.learning_rate
    assert hp.max_seq_length == 512


def test_an_audio_model_trains_and_saves_an_adapter(settings, tmp_path):
    spec = TuningSpec(
        base_model="tuneforge/tiny-audio",
        method="supervised",
        mode="peft",
        hyperparameters={"epochs": 1, "batch_size": 4},
    )
    result = run_tuning(spec, examples("audio", 8), examples("audio", 4), tmp_path, settings)
    [checkpoint] = result.checkpoints
    assert (checkpoint.path / "adapter_config.json").is_file()
    assert result.steps == 2
    assert result.epochs[0].valid_loss is not None  # the padded validation batches ran too


def test_all_weights_of_a_vision_model_train_and_save_as_a_model_of_their_own(settings, tmp_path):
    spec = TuningSpec(
        base_model="tuneforge/tiny-vision",
        method="supervised",
        mode="full",
        hyperparameters={"epochs": 1, "batch_size": 4},
    )
    result = run_tuning(spec, examples("document", 8), [], tmp_path, settings)
    [checkpoint] = result.checkpoints
    from tuneforge.models.loading import load_media_model, media_kinds

    assert media_kinds(checkpoint.path) == {"image", "document"}
    tuned = load_media_model(checkpoint.path)
    assert type(tuned).__name__ == "LlavaForConditionalGeneration"
    # It serves with its base's processor (training saved the tokenizer alone).
    from dataclasses import replace

    from tuneforge.inference import make_backend
    from tuneforge.inference.types import GenerationParams, ModelTarget

    prompt = examples("document", 1)[0]
    prompt = replace(prompt, turns=prompt.turns[:-1])
    target = ModelTarget(
        name="full",
        base_source=str(settings.data_dir / "models" / "tiny-vision"),
        weights_path=checkpoint.path,
    )
    result = make_backend(settings).generate(target, prompt, GenerationParams(max_output_tokens=4))
    assert result.prompt_tokens > 64  # the page's 64 placeholders and the question


def image_pairs(count: int):
    import random
    from dataclasses import replace

    from tuneforge.data.media_samples import COLOURS
    from tuneforge.data.records import PreferenceExample

    rng = random.Random(0)
    pairs = []
    for conversation in examples("image", count):
        answer = conversation.turns[-1].text
        wrong = rng.choice([c for c in COLOURS if c != answer])
        prompt = replace(conversation, turns=conversation.turns[:-1])
        pairs.append(PreferenceExample(prompt=prompt, chosen=answer, rejected=wrong))
    return pairs


def test_preference_tuning_reads_the_images_of_its_prompts(settings, tmp_path):
    import pytest

    from tuneforge.engine.errors import TuningError

    spec = TuningSpec(
        base_model="tuneforge/tiny-vision",
        method="preference",
        mode="peft",
        hyperparameters={"epochs": 2, "batch_size": 4},
    )
    result = run_tuning(spec, image_pairs(16), image_pairs(4), tmp_path / "dpo", settings)
    assert (result.checkpoints[-1].path / "adapter_config.json").is_file()
    losses = [loss for _, loss in result.step_losses]
    assert losses[-1] < losses[0]
    # 64 image tokens and the question in each of the pair's two sequences
    assert result.trained_tokens > 2 * 16 * 2 * 64
    full = spec.model_copy(update={"mode": "full"})
    with pytest.raises(TuningError, match="preference tuning with images trains a LoRA adapter"):
        run_tuning(full, image_pairs(8), [], tmp_path / "full", settings)

"""The built-in tiny media models: built offline and deterministically, loaded by transformers'
Auto classes, rendering text as tiny-chat does and media as placeholders their processor fills."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tuneforge.data.media_tokenize import sampling_rate
from tuneforge.errors import InvalidArgument, ModelNotFound
from tuneforge.models.loading import load_media_model, load_processor, media_kinds
from tuneforge.models.resolve import resolve_base_model
from tuneforge.models.tiny import build_tokenizer
from tuneforge.models.tiny_media import (
    AUDIO_BOS,
    AUDIO_EOS,
    AUDIO_TOKEN,
    IMAGE_TOKEN,
    ensure_tiny_media_model,
    media_chat_template,
)

VISION, AUDIO = "tuneforge/tiny-vision", "tuneforge/tiny-audio"

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {}, "unit": {"enum": ["celsius", "fahrenheit"]}},
                "required": ["city"],
            },
        },
    }
]
CALL = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
CONVERSATIONS = [
    [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "The plot was dull."},
        {"role": "assistant", "content": "negative"},
    ],
    [
        {"role": "system", "content": "You check the weather."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "content": '{"temperature": 21}'},
        {"role": "assistant", "content": "21 degrees."},
    ],
]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media-models")
    return {name: ensure_tiny_media_model(name, folder) for name in (VISION, AUDIO)}


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_the_build_is_deterministic_and_complete(built, tmp_path):
    for name, folder in built.items():
        again = ensure_tiny_media_model(name, tmp_path)
        assert _digests(again) == _digests(folder), name
        assert {"model.safetensors", "processor_config.json", "chat_template.jinja"} <= {
            p.name for p in folder.iterdir()
        }
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_auto_classes_load_them_offline(built):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    vision = AutoModelForImageTextToText.from_pretrained(built[VISION])
    assert type(vision).__name__ == "LlavaForConditionalGeneration"
    assert type(AutoProcessor.from_pretrained(built[VISION])).__name__ == "LlavaProcessor"
    audio = load_media_model(built[AUDIO])
    assert type(audio).__name__ == "Qwen2AudioForConditionalGeneration"
    processor = load_processor(built[AUDIO])
    assert type(processor).__name__ == "Qwen2AudioProcessor"
    assert sampling_rate(processor) == 16_000


@pytest.mark.parametrize("name", [VISION, AUDIO])
@pytest.mark.parametrize("conversation", CONVERSATIONS)
def test_text_only_conversations_render_as_tiny_chat_renders_them(built, name, conversation):
    tools = TOOLS if any("tool_calls" in m for m in conversation) else None
    tiny_chat = build_tokenizer()
    processor = load_processor(built[name])
    for prompt in (False, True):
        expected = tiny_chat.apply_chat_template(
            conversation, tools=tools, tokenize=False, add_generation_prompt=prompt
        )
        for renderer in (processor, processor.tokenizer):
            assert (
                renderer.apply_chat_template(
                    conversation, tools=tools, tokenize=False, add_generation_prompt=prompt
                )
                == expected
            )


def test_an_image_part_expands_to_64_image_tokens_the_model_reads(built):
    import torch

    processor = load_processor(built[VISION])
    model = load_media_model(built[VISION])
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Colour? "},
                {"type": "image"},
                {"type": "text", "text": " And this one?"},
                {"type": "image"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "red"}]},
    ]
    text = processor.apply_chat_template(messages, tokenize=False)
    assert text == (
        f"<|im_start|>user\nColour? {IMAGE_TOKEN} And this one?{IMAGE_TOKEN}<|im_end|>\n"
        "<|im_start|>assistant\nred<|im_end|>\n"
    )
    # Any size and mode: a wide RGBA picture and a grey page come out as 64x64 RGB.
    images = [Image.new("RGBA", (300, 90), "red"), Image.new("L", (64, 64), 255)]
    batch = processor(text=[text], images=images, return_tensors="pt")
    assert (batch["input_ids"] == model.config.image_token_id).sum() == 2 * 64
    assert batch["pixel_values"].shape == (2, 3, 64, 64)
    with torch.no_grad():
        assert torch.isfinite(model(**batch, labels=batch["input_ids"]).loss)


@pytest.mark.parametrize(("seconds", "tokens"), [(1.5, 37), (4.0, 100), (9.0, 100)])
def test_an_audio_part_expands_to_25_tokens_a_second_up_to_4_seconds(built, seconds, tokens):
    import torch

    processor = load_processor(built[AUDIO])
    model = load_media_model(built[AUDIO])
    messages = [
        {"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "Pitch?"}]}
    ]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert f"{AUDIO_BOS}{AUDIO_TOKEN}{AUDIO_EOS}Pitch?" in text
    wave = np.sin(np.arange(int(seconds * 16_000)) / 16_000 * 2 * np.pi * 440).astype(np.float32)
    batch = processor(text=[text], audio=[wave], sampling_rate=16_000, return_tensors="pt")
    ids = batch["input_ids"][0].tolist()
    assert ids.count(model.config.audio_token_id) == tokens
    assert ids.count(processor.tokenizer.convert_tokens_to_ids(AUDIO_BOS)) == 1
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == len(ids) + 3


@pytest.mark.parametrize(
    ("name", "part", "message"),
    [
        (VISION, {"type": "audio"}, "takes no audio"),
        (AUDIO, {"type": "image"}, "takes no images"),
        (VISION, {"type": "video"}, "unknown content part type: video"),
    ],
)
def test_a_part_the_model_cannot_take_is_an_error_not_text(built, name, part, message):
    from jinja2.exceptions import TemplateError

    processor = load_processor(built[name])
    with pytest.raises(TemplateError, match=message):
        processor.apply_chat_template([{"role": "user", "content": [part]}], tokenize=False)


def test_an_older_build_takes_todays_template(built):
    template = built[VISION] / "chat_template.jinja"
    template.write_text("{{ messages }}")
    ensure_tiny_media_model(VISION, built[VISION].parent)
    assert template.read_text() == media_chat_template("vision")


def _config_folder(root: Path, config) -> Path:
    folder = root / config.model_type
    config.save_pretrained(folder)
    return folder


def test_media_kinds_read_from_the_config(built, models_dir, tmp_path):
    from transformers import (
        Gemma3Config,
        Gemma3TextConfig,
        Idefics3Config,
        Qwen2AudioConfig,
        Qwen2VLConfig,
    )

    assert media_kinds(built[VISION]) == {"image", "document"}
    assert media_kinds(built[AUDIO]) == {"audio"}
    assert media_kinds(models_dir / "tiny-chat") == frozenset()
    # The published architectures, by their configs alone (no weights in these folders).
    for config in (Qwen2VLConfig(), Idefics3Config(), Gemma3Config()):
        assert media_kinds(_config_folder(tmp_path, config)) == {"image", "document"}
    assert media_kinds(_config_folder(tmp_path, Qwen2AudioConfig())) == {"audio"}
    assert media_kinds(_config_folder(tmp_path, Gemma3TextConfig())) == frozenset()


def test_a_text_only_model_is_no_media_model(models_dir):
    with pytest.raises(InvalidArgument, match="text-only"):
        load_media_model(models_dir / "tiny-chat")
    tokenizer = load_processor(models_dir / "tiny-chat")  # its tokenizer, prepared
    assert tokenizer.pad_token == "<|pad|>"
    assert sampling_rate(tokenizer) is None


def test_resolve_builds_and_names_the_media_models(settings):
    for name in (VISION, AUDIO):
        assert media_kinds(resolve_base_model(name, settings).source)
    with pytest.raises(ModelNotFound) as unknown:
        resolve_base_model("tuneforge/tiny-video", settings)
    for name in ("tuneforge/tiny-chat", "tuneforge/tiny-chat-large", VISION, AUDIO):
        assert name in str(unknown.value)


def test_the_catalog_lists_each_built_in_model_once(settings, tmp_path):
    """A built media model's folder under the models root is that built-in model, not also a
    local base called ``tiny-vision``."""
    from tuneforge.service.models import ModelService
    from tuneforge.store.testing import migrated_database

    resolve_base_model(VISION, settings)
    with migrated_database("sqlite", tmp_path) as db:
        bases = [m.id for m in ModelService(db, settings).list("default") if m.kind == "base"]
    assert bases[:4] == ["tuneforge/tiny-chat", "tuneforge/tiny-chat-large", VISION, AUDIO]
    assert "tiny-vision" not in bases

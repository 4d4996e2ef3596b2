"""The built-in tiny media models, built on this machine like ``tuneforge/tiny-chat``.

``tuneforge/tiny-vision`` is a LLaVA (a CLIP vision tower, a projector, a Llama), and
``tuneforge/tiny-audio`` a Qwen2-Audio (a Whisper-style encoder, a projector, a Qwen2): real
transformers architectures, so the code that tunes and serves them is the code that tunes and
serves the published ones. Both use the tiny tokenizer with the media placeholder tokens added,
and a chat template that renders text-only turns exactly as tiny-chat's.

The towers are random like the rest, and a LoRA adapter still learns to read them: a random
patch embedding keeps a picture's colours, and a random convolution over log-mel frames a tone's
pitch, apart. What a random tower does not give is invariance to where things are: the tiny
vision model learns the word on a page or the shape in a picture when the layout is fixed (the
word centred at one size), not a word placed anywhere. ``initializer_range=0.2`` in the
language models, the projectors and the audio encoder, for tiny.py's reason; the CLIP tower
scales its own initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tuneforge.models.tiny import (
    CHAT_TEMPLATE,
    build_tokenizer,
    built_once,
    text_config_arguments,
)

if TYPE_CHECKING:  # torch and transformers load only when a model is built: see models/resolve
    from transformers import PreTrainedModel, PreTrainedTokenizerFast, ProcessorMixin

IMAGE_TOKEN = "<image>"
AUDIO_BOS, AUDIO_TOKEN, AUDIO_EOS = "<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>"
# Both models' tokenizers hold all four, so they are one tokenizer: the same ids in each.
MEDIA_TOKENS = [IMAGE_TOKEN, AUDIO_BOS, AUDIO_TOKEN, AUDIO_EOS]

IMAGE_SIZE = 64  # pixels a side: a PDF page's one big word still reads at this size
PATCH_SIZE = 8  # (64 / 8)^2 = 64 placeholder tokens an image
SAMPLING_RATE = 16_000
AUDIO_SECONDS = 4  # the encoder's window: longer audio is cut, shorter padded
MEL_BINS = 32
HOP_LENGTH = 160  # Whisper's: 100 mel frames a second
# The encoder's conv halves the frames and its pooling halves them again: 25 tokens a second.
AUDIO_FRAMES = AUDIO_SECONDS * SAMPLING_RATE // HOP_LENGTH


@dataclass(frozen=True)
class TinyMediaSpec:
    kind: str  # "vision" or "audio"
    hidden_size: int  # the language model's
    layers: int
    heads: int
    tower_hidden_size: int
    tower_layers: int
    seed: int


TINY_MEDIA_MODELS = {
    "tuneforge/tiny-vision": TinyMediaSpec(
        kind="vision",
        hidden_size=64,
        layers=2,
        heads=4,
        tower_hidden_size=64,
        tower_layers=2,
        seed=2,
    ),
    "tuneforge/tiny-audio": TinyMediaSpec(
        kind="audio",
        hidden_size=64,
        layers=2,
        heads=4,
        tower_hidden_size=64,
        tower_layers=2,
        seed=3,
    ),
}


def _part_template(kind: str) -> str:
    """A list of parts rendered in order; the other kind's part is an error, so media never
    reaches a model as placeholder text it cannot fill."""
    image = (
        IMAGE_TOKEN
        if kind == "vision"
        else "{{ raise_exception('this model takes no images: audio and text only') }}"
    )
    audio = (
        AUDIO_BOS + AUDIO_TOKEN + AUDIO_EOS
        if kind == "audio"
        else "{{ raise_exception('this model takes no audio: images and text only') }}"
    )
    return (
        "{% macro render(content) %}"
        "{% if content is string or content is none %}{{ content }}"
        "{% else %}{% for part in content %}"
        "{% if part['type'] == 'text' %}{{ part['text'] }}"
        "{% elif part['type'] == 'image' %}"
        + image
        + "{% elif part['type'] == 'audio' %}"
        + audio
        + "{% else %}{{ raise_exception('unknown content part type: ' ~ part['type']) }}"
        "{% endif %}{% endfor %}{% endif %}"
        "{% endmacro %}"
    )


def media_chat_template(kind: str) -> str:
    """tiny.py's template with each message's content rendered through ``render``: a string as
    before (byte for byte), or a list of text, image and audio parts."""
    body = (
        CHAT_TEMPLATE.replace(
            "{{ messages[0]['content'] }}", "{{ render(messages[0]['content']) }}"
        )
        .replace("{{ message['content'] or '' }}", "{{ render(message['content'] or '') }}")
        .replace("{{ message['content'] }}", "{{ render(message['content']) }}")
    )
    return _part_template(kind) + body


def build_media_tokenizer(kind: str) -> PreTrainedTokenizerFast:
    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": MEDIA_TOKENS})
    tokenizer.chat_template = media_chat_template(kind)
    return tokenizer


def _text_config(spec: TinyMediaSpec, tokenizer: PreTrainedTokenizerFast, model_type: str):
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type, **text_config_arguments(spec, tokenizer))


def build_vision(spec: TinyMediaSpec, tokenizer: PreTrainedTokenizerFast):
    """A LLaVA model and its processor."""
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    vision = CLIPVisionConfig(
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        hidden_size=spec.tower_hidden_size,
        intermediate_size=spec.tower_hidden_size * 2,
        num_hidden_layers=spec.tower_layers,
        num_attention_heads=4,
        projection_dim=spec.tower_hidden_size,
        initializer_range=0.2,
    )
    image_tokens = (IMAGE_SIZE // PATCH_SIZE) ** 2
    config = LlavaConfig(
        vision_config=vision,
        text_config=_text_config(spec, tokenizer, "llama"),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=image_tokens,
        # The last layer's patches, not LLaVA's one-before-last: a two-layer tower has few.
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",  # the patches, without CLIP's class token
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )
    model = _seeded(LlavaForConditionalGeneration, config, spec.seed)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": IMAGE_SIZE},
            crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        ),
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, which "default" drops again
        image_token=IMAGE_TOKEN,
        chat_template=tokenizer.chat_template,
    )
    return model, processor


def build_audio(spec: TinyMediaSpec, tokenizer: PreTrainedTokenizerFast):
    """A Qwen2-Audio model and its processor."""
    from transformers import (
        Qwen2AudioConfig,
        Qwen2AudioEncoderConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        WhisperFeatureExtractor,
    )

    encoder = Qwen2AudioEncoderConfig(
        num_mel_bins=MEL_BINS,
        d_model=spec.tower_hidden_size,
        encoder_layers=spec.tower_layers,
        encoder_attention_heads=4,
        encoder_ffn_dim=spec.tower_hidden_size * 2,
        max_source_positions=AUDIO_FRAMES // 2,  # after the stride-2 convolution
        initializer_range=0.2,
    )
    config = Qwen2AudioConfig(
        audio_config=encoder,
        text_config=_text_config(spec, tokenizer, "qwen2"),
        audio_token_index=tokenizer.convert_tokens_to_ids(AUDIO_TOKEN),
        tie_word_embeddings=False,
    )
    model = _seeded(Qwen2AudioForConditionalGeneration, config, spec.seed)
    processor = Qwen2AudioProcessor(
        feature_extractor=WhisperFeatureExtractor(
            feature_size=MEL_BINS,
            sampling_rate=SAMPLING_RATE,
            hop_length=HOP_LENGTH,
            chunk_length=AUDIO_SECONDS,
        ),
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
        audio_token=AUDIO_TOKEN,
        audio_bos_token=AUDIO_BOS,
        audio_eos_token=AUDIO_EOS,
    )
    return model, processor


def _seeded(model_class, config, seed: int) -> PreTrainedModel:
    import torch

    torch.manual_seed(seed)
    model = model_class(config)
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    return model


def build_media_model(name: str) -> tuple[PreTrainedModel, ProcessorMixin]:
    spec = TINY_MEDIA_MODELS[name]
    tokenizer = build_media_tokenizer(spec.kind)
    build = build_vision if spec.kind == "vision" else build_audio
    return build(spec, tokenizer)


def ensure_tiny_media_model(name: str, models_dir: Path) -> Path:
    """Build the named tiny media model into ``models_dir`` unless it is there; return its
    folder."""
    kind = TINY_MEDIA_MODELS[name].kind

    def save(staging: Path) -> None:
        model, processor = build_media_model(name)
        model.save_pretrained(staging)
        processor.save_pretrained(staging)

    return built_once(models_dir / name.split("/", 1)[1], save, media_chat_template(kind))

"""A tiny random Idefics3 (SmolVLM's architecture), built in code into a folder, to show that
media tuning and serving are not LLaVA's alone: its processor cuts and pools an image into its
own placeholder run (``<fake_token_around_image><global-img><image>...``) and its pixel inputs
carry a mask, none of which tuneforge knows about. It shares the tiny tokenizer and tiny-vision's
template; its 64x64 image becomes 64 patches pooled to 16 tokens."""

from __future__ import annotations

from pathlib import Path

IMAGE_TOKENS = 16  # (64 / 8) ** 2 patches, pixel-shuffled by a scale factor of 2


def build_tiny_idefics3(folder: Path) -> Path:
    import torch
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
    )

    from tuneforge.models.tiny import build_tokenizer, text_config_arguments
    from tuneforge.models.tiny_media import TINY_MEDIA_MODELS, media_chat_template

    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<fake_token_around_image>", "<image>", "<global-img>"]}
    )
    tokenizer.chat_template = media_chat_template("vision")  # an image part renders <image>
    text = text_config_arguments(TINY_MEDIA_MODELS["tuneforge/tiny-vision"], tokenizer)
    config = Idefics3Config(
        text_config={**text, "model_type": "llama"},
        vision_config={
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "image_size": 64, "patch_size": 8,
        },
        scale_factor=2,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessorPil(
            do_image_splitting=False, size={"longest_edge": 64}, max_image_size={"longest_edge": 64}
        ),
        tokenizer=tokenizer,
        image_seq_len=IMAGE_TOKENS,
        chat_template=tokenizer.chat_template,
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder

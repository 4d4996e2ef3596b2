"""A prompt as its model reads it: token ids, and for a prompt with media the towers' inputs
(pixel values, audio features) that ``generate`` takes beside them.

The media's bytes were resolved and checked against the configured limits by the service;
here they are decoded for the model: a document's pages rendered, audio resampled to its rate
(and refused past what the model hears). A model that reads no media never gets here with any:
the service refuses them, naming the part.
"""

from __future__ import annotations

from typing import Any

from tuneforge.data.media import NO_LIMITS
from tuneforge.data.media_check import refused_kind
from tuneforge.data.media_tokenize import MediaEncoder, audio_window, decode_media, sampling_rate
from tuneforge.data.records import Conversation
from tuneforge.data.tokenize import prompt_ids
from tuneforge.errors import InvalidArgument
from tuneforge.inference.model_cache import LoadedModel


def encode_prompt(loaded: LoadedModel, prompt: Conversation) -> tuple[list[int], dict[str, Any]]:
    """The prompt's ids followed by the generation prompt, and its media inputs ({} without
    media)."""
    if not prompt.media:
        return prompt_ids(prompt, loaded.tokenizer), {}
    if loaded.processor is None:
        first = prompt.media[0]
        raise InvalidArgument(refused_kind(first, loaded.key, frozenset()), first.path)

    def read(media) -> bytes:
        if media.data is None:  # the service resolves every file part before generation
            raise InvalidArgument(f"{media.path}: the file {media.uri!r} was not read", media.path)
        return media.data

    decoded = decode_media(
        prompt, read, NO_LIMITS, sampling_rate(loaded.processor), audio_window(loaded.processor)
    )
    encoding = MediaEncoder(loaded.processor).encode(prompt, decoded, generation_prompt=True)
    return encoding.input_ids, encoding.media_inputs


def on_device(media_inputs: dict[str, Any], model) -> dict[str, Any]:
    """The media inputs on the model's device, floating ones in its dtype."""
    moved = {}
    for key, value in media_inputs.items():
        if value.is_floating_point():
            value = value.to(dtype=model.dtype)
        moved[key] = value.to(model.device)
    return moved

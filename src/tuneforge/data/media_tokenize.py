"""Encode a conversation with media through its model's processor, marking the tokens that
carry loss.

A processor (transformers' ``AutoProcessor``: an image processor or a feature extractor beside
the tokenizer) renders the chat template, replaces each media placeholder with the run of
tokens the model's tower fills, and turns the media into the tower's inputs (``pixel_values``,
``input_features``, ...). Which tokens are the model's turns is found as in ``tokenize.py``,
from rendered prefixes, but counted in tokens after the processor has expanded the
placeholders: the tokens a model turn adds are those of ``render(turns[:i+1])`` beyond those of
``render(turns[:i], add_generation_prompt)``, each prefix encoded with the media it holds.
Media sit in user turns only, so no placeholder token ever carries loss.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuneforge.data.media import (
    Media,
    MediaError,
    MediaLimits,
    decode_audio,
    decode_image,
    render_pdf,
)
from tuneforge.data.records import Conversation
from tuneforge.data.tokenize import IGNORE_INDEX, chat_messages
from tuneforge.errors import InvalidArgument

if TYPE_CHECKING:
    import torch

TEXT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class DecodedMedia:
    """A conversation's media as its processor takes them: images (an image, or each page of
    a document, in order), audio waveforms, and each document's page count by its index."""

    images: list[Any] = field(default_factory=list)
    audios: list[Any] = field(default_factory=list)
    pages: dict[int, int] = field(default_factory=dict)


def decode_media(
    conversation: Conversation,
    read: Callable[[Media], bytes],
    limits: MediaLimits,
    sampling_rate: int | None,
    audio_window: float | None = None,
) -> DecodedMedia:
    """Each media part decoded as the model reads it; an InvalidArgument naming the part when
    it cannot be (over a limit, longer than the model hears)."""
    decoded = DecodedMedia()
    for index, media in enumerate(conversation.media):
        data = read(media)
        try:
            if media.kind == "image":
                decoded.images.append(decode_image(data, limits))
            elif media.kind == "document":
                pages = render_pdf(data, limits)
                decoded.pages[index] = len(pages)
                decoded.images.extend(pages)
            elif sampling_rate is None:
                raise MediaError("the model's processor has no audio feature extractor")
            else:
                decoded.audios.append(decode_audio(data, sampling_rate, limits, audio_window))
        except MediaError as err:
            raise InvalidArgument(f"{media.path}: {err}", media.path) from None
    return decoded


@dataclass
class MediaEncoding:
    """One conversation as its model reads it: token ids, labels (IGNORE_INDEX where no loss)
    and the towers' inputs, each a tensor whose first dimension counts media items."""

    input_ids: list[int]
    labels: list[int]
    media_inputs: dict[str, torch.Tensor]
    media_tokens: int = 0  # the tokens the media's placeholders expanded to

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


class MediaEncoder:
    """Encodes conversations with one model's processor."""

    def __init__(self, processor) -> None:
        self.processor = processor
        self.templater = (
            processor if getattr(processor, "chat_template", None) else (processor.tokenizer)
        )
        # The tokens the towers' outputs fill (LLaVA's <image>, Qwen2-VL's <|image_pad|>,
        # Qwen2-Audio's <|AUDIO|>, ...), as the processors name them.
        placeholders = [getattr(processor, f"{k}_token", None) for k in ("image", "audio")]
        self.placeholder_ids = {
            processor.tokenizer.convert_tokens_to_ids(token) for token in placeholders if token
        }

    def render(self, messages: list[dict[str, Any]], generation_prompt: bool = False) -> str:
        return self.templater.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )

    def encode_text(self, text: str, images: list, audios: list) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
        if images:
            kwargs["images"] = images
        if audios:
            kwargs["audio"] = audios
            if rate := sampling_rate(self.processor):
                kwargs["sampling_rate"] = rate
        return self.processor(add_special_tokens=False, **kwargs)

    def encode(
        self, conversation: Conversation, media: DecodedMedia, generation_prompt: bool = False
    ) -> MediaEncoding:
        """The conversation's tokens and labels; with ``generation_prompt``, a prompt (no
        labels) followed by the template's generation prompt."""
        messages = chat_messages(conversation, media.pages)
        full = self.render(messages, generation_prompt)
        encoded = self.encode_text(full, media.images, media.audios)
        input_ids: list[int] = encoded["input_ids"][0].tolist()
        labels = [IGNORE_INDEX] * len(input_ids)
        offset = len(messages) - len(conversation.turns)  # 1 with a system message
        for index, turn in enumerate(conversation.turns):
            if turn.role != "model" or not turn.weight:
                continue
            position = offset + index
            start = self.prefix_length(messages[:position], media, input_ids, True)
            end = self.prefix_length(messages[: position + 1], media, input_ids, False)
            labels[start:end] = input_ids[start:end]
        extra = {k: v for k, v in encoded.items() if k not in TEXT_KEYS}
        media_tokens = sum(1 for token in input_ids if token in self.placeholder_ids)
        return MediaEncoding(input_ids, labels, extra, media_tokens)

    def turn_runs(self, conversation: Conversation, media: DecodedMedia) -> list[list[int]]:
        """A prompt's token ids as the model reads it, cut into one run per turn (as
        ``tokenize.prompt_token_runs`` cuts a text prompt): the system instruction counts with
        the first turn, the generation prompt with the last."""
        messages = chat_messages(conversation, media.pages)
        ids = self.encode(conversation, media, generation_prompt=True).input_ids
        offset = len(messages) - len(conversation.turns)
        ends = [
            self.prefix_length(messages[: offset + index + 1], media, ids, False)
            for index in range(len(conversation.turns) - 1)
        ]
        bounds = [0, *ends, len(ids)]
        return [ids[start:end] for start, end in itertools.pairwise(bounds)]

    def prefix_length(
        self,
        messages: list[dict[str, Any]],
        media: DecodedMedia,
        full_ids: list[int],
        generation_prompt: bool,
    ) -> int:
        """How many of the full encoding's tokens the rendered prefix ``messages`` takes."""
        images = sum(_parts(messages, "image"))
        audios = sum(_parts(messages, "audio"))
        text = self.render(messages, generation_prompt)
        ids = self.encode_text(text, media.images[:images], media.audios[:audios])
        prefix: list[int] = ids["input_ids"][0].tolist()
        if full_ids[: len(prefix)] != prefix:
            raise InvalidArgument(
                "the model's chat template renders a conversation's earlier turns differently"
                " once later turns follow: its turns' tokens cannot be told apart for training"
            )
        return len(prefix)


def media_token_counter(
    processor, read: Callable[[Media], bytes], limits: MediaLimits, window: float | None
) -> Callable[[Conversation], tuple[int, int, int]]:
    """(input, output, media) tokens of a conversation as the model reads it: its media decoded
    and its placeholders expanded by the processor."""
    encoder = MediaEncoder(processor)
    rate = sampling_rate(processor)

    def count(conversation: Conversation) -> tuple[int, int, int]:
        encoding = encoder.encode(
            conversation, decode_media(conversation, read, limits, rate, window)
        )
        output = 0 if conversation.is_prompt_only else encoding.trained_tokens
        return len(encoding.input_ids) - output, output, encoding.media_tokens

    return count


def sampling_rate(processor) -> int | None:
    """The rate the processor's feature extractor takes audio at; None without one."""
    return getattr(getattr(processor, "feature_extractor", None), "sampling_rate", None)


def audio_window(processor) -> float | None:
    """The seconds of audio the model hears (its feature extractor's window); None without
    one."""
    extractor = getattr(processor, "feature_extractor", None)
    samples = getattr(extractor, "n_samples", None)
    rate = sampling_rate(processor)
    return samples / rate if samples and rate else None


def _parts(messages: list[dict[str, Any]], part_type: str):
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            yield sum(1 for part in content if part.get("type") == part_type)

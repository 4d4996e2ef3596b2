"""Checking the media parts of an example: as many as allowed, of kinds the base model reads,
and bytes that decode within the limits.

The bytes of a part given by URI come from ``read`` (the jobs layer resolves uploaded files,
dataset-root paths and bucket URIs); without it only inline parts are decoded here, and the
job checks the others when it reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tuneforge.data.media import (
    KIND_WORDS,
    Media,
    MediaError,
    MediaKind,
    MediaLimits,
    check_media_bytes,
)
from tuneforge.data.records import Conversation, Example, PreferenceExample, Problem
from tuneforge.errors import InvalidArgument


def kinds_sentence(model: str, accepts: frozenset[str]) -> str:
    """What a model reads, for messages: "tuneforge/tiny-chat reads text only",
    "tuneforge/tiny-vision reads text, images and PDF documents"."""
    if not accepts:
        return f"{model} reads text only"
    words = ["text"] + [KIND_WORDS[k] for k in ("image", "document", "audio") if k in accepts]
    return f"{model} reads {', '.join(words[:-1])} and {words[-1]}"


def refused_kind(media: Media, model: str, accepts: frozenset[str]) -> str:
    return f"{kinds_sentence(model, accepts)}; it cannot take {KIND_WORDS[media.kind]}"


@dataclass(frozen=True)
class MediaCheck:
    """How media parts are checked. ``accepts``: the kinds the base model reads (None when no
    model is known: any kind passes); ``audio_window``: the seconds of audio it hears."""

    limits: MediaLimits = field(default_factory=MediaLimits)
    read: Callable[[Media], bytes] | None = None
    accepts: frozenset[str] | None = None
    model: str = ""
    audio_window: float | None = None
    # (input, output, media) tokens of a conversation with media, through the model's
    # processor (the text tokenizer sees each part as one placeholder)
    count_tokens: Callable[[Conversation], tuple[int, int, int]] | None = None
    # The tuning method, as refusals name it ("the preference method"), and the media its
    # trainer reads (None: no method known)
    method: str = ""
    method_reads: frozenset[str] | None = None

    def counts(self, example: Example) -> bool:
        """Whether the example's tokens are counted with its media expanded: it has media, a
        model's processor counts them, and every part's bytes can be read here (a local check
        without a reader counts a part named by file as the text tokenizer sees it)."""
        media = example_media(example)
        readable = self.read is not None or all(part.data is not None for part in media)
        return bool(media) and self.count_tokens is not None and readable

    def bytes_of(self, media: Media) -> bytes | None:
        """The part's bytes; None when it names a file and there is no reader."""
        if media.data is not None:
            return media.data
        return self.read(media) if self.read is not None else None

    def problems(self, line: int, example: Example) -> list[Problem]:
        """Every problem of the example's media, each at its part's field path."""
        media = example_media(example)
        problems: list[Problem] = []
        limit = self.limits.parts_per_example
        if len(media) > limit:
            message = (
                f"an example holds at most {limit} media parts; this one has {len(media):,}"
                " (TUNEFORGE_MAX_MEDIA_PARTS)"
            )
            return [Problem(line, media[limit].path, message)]
        for part in media:
            if self.method_reads is not None and part.kind not in self.method_reads:
                problems.append(
                    Problem(line, part.path, refused_kind(part, self.method, self.method_reads))
                )
                continue
            if self.accepts is not None and part.kind not in self.accepts:
                problems.append(
                    Problem(line, part.path, refused_kind(part, self.model, self.accepts))
                )
                continue
            try:
                data = self.bytes_of(part)
                if data is not None:
                    check_media_bytes(part, data, self.limits, self.audio_window)
            except (MediaError, InvalidArgument) as err:
                problems.append(Problem(line, part.path, without_field(str(err), part.path)))
        return problems


def without_field(message: str, path: str) -> str:
    """A resolver's message starts with the field it is about; the problem names it already."""
    return message.removeprefix(f"{path}: ")


def example_media(example: Example) -> tuple[Media, ...]:
    conversation = example.prompt if isinstance(example, PreferenceExample) else example
    return conversation.media


def media_counts(examples: list[Example] | list[Conversation]) -> dict[MediaKind, int]:
    """How many parts of each kind the examples hold."""
    counts: dict[MediaKind, int] = {}
    for example in examples:
        for media in example_media(example):
            counts[media.kind] = counts.get(media.kind, 0) + 1
    return counts

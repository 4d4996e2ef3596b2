"""The model page's "Try it" form: a conversation with a tuned model and its base side by side.

Nothing is kept on the server: the form carries the conversation so far as hidden fields, one
``history_user`` per user turn and, for each side, one ``history_<side>`` per answer, in order.
Each side sees the user's turns and its own earlier answers, as it would in a chat of its own.

A user turn may come with a file (an image, a PDF or audio), sent as an inline media part before
its text. The form carries it on as ``history_media`` (a base64 data URL, "" for a turn without)
and ``history_media_name``, one of each per user turn: so a conversation carries at most
CARRIED_MEDIA_BYTES of files in all, and a larger one is refused with a pointer to the API.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field

from tuneforge.data.media import (
    MIME_KINDS,
    SUPPORTED_TYPES,
    Media,
    MediaError,
    MediaLimits,
    check_media_bytes,
    from_data_url,
    kind_of,
    sniffed_type,
)
from tuneforge.data.records import Conversation, Turn
from tuneforge.data.system_instruction import first_system_instruction
from tuneforge.errors import InvalidArgument, TuneforgeError
from tuneforge.inference.types import GenerationParams
from tuneforge.service import ModelInfo, Service
from tuneforge.store.models import TuningJob

TUNED, BASE = "tuned", "base"
# The files one conversation carries in the page's hidden fields, in all (base64 grows them
# by a third); larger ones go through the API, which reads files by id.
CARRIED_MEDIA_BYTES = 2 * 1024 * 1024
# The largest form field then: one file of that size as a data URL.
CARRIED_FIELD_BYTES = 4 * (CARRIED_MEDIA_BYTES // 3 + 1) + 1024
ACCEPTED_TYPES = (
    "image/png,image/jpeg,image/webp,image/gif,application/pdf,audio/wav,audio/mpeg,audio/flac"
)


@dataclass(frozen=True)
class Side:
    key: str  # TUNED or BASE: the suffix of its history fields
    label: str
    model: str  # the name generation is asked for


@dataclass(frozen=True)
class Attachment:
    """A file sent with a user turn: its name (shown, never read), type and bytes."""

    name: str
    mime_type: str
    data: bytes

    @property
    def data_url(self) -> str:
        return f"data:{self.mime_type};base64,{base64.b64encode(self.data).decode()}"

    def media(self) -> Media:
        return Media(kind_of(self.mime_type), self.mime_type, self.data, path=f"file {self.name}")


@dataclass(frozen=True)
class Exchange:
    user: str
    answers: dict[str, str]  # by side key
    attachment: Attachment | None = None


@dataclass(frozen=True)
class Answer:
    text: str
    finish_reason: str
    prompt_tokens: int
    output_tokens: int
    seconds: float


@dataclass
class Chat:
    """What the form holds: the sides, the conversation so far and the sampling parameters."""

    sides: list[Side]
    history: list[Exchange] = field(default_factory=list)
    system: str = ""
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 64
    last: dict[str, Answer] = field(default_factory=dict)  # the newest answer of each side

    def params(self) -> GenerationParams:
        return GenerationParams(
            temperature=self.temperature, top_p=self.top_p, max_output_tokens=self.max_tokens
        )


def sides_of(info: ModelInfo) -> list[Side]:
    """A tuned model or checkpoint answers beside the base model its job tuned; a base
    model answers alone."""
    if info.job is None:
        return [Side(BASE, info.id, info.id)]
    return [
        Side(TUNED, f"tuned: {info.id}", info.id),
        Side(BASE, f"base: {info.job.base_model}", info.job.base_model),
    ]


def read_history(
    sides: list[Side],
    users: list[str],
    answers: dict[str, list[str]],
    media: list[str] | None = None,
    media_names: list[str] | None = None,
) -> list[Exchange]:
    """The exchanges the form's hidden fields hold; InvalidArgument when they do not pair up."""
    media, media_names = media or [""] * len(users), media_names or [""] * len(users)
    if any(len(answers.get(side.key, [])) != len(users) for side in sides) or not (
        len(media) == len(media_names) == len(users)
    ):
        raise InvalidArgument(
            "the conversation in the form is incomplete (every user turn needs each model's "
            "answer): start a new conversation",
            "history",
        )
    attachments = [_carried(url, name) for url, name in zip(media, media_names, strict=True)]
    carried = sum(len(a.data) for a in attachments if a is not None)
    if carried > CARRIED_MEDIA_BYTES:
        raise InvalidArgument(_too_large(carried), "history_media")
    return [
        Exchange(user, {side.key: answers[side.key][i] for side in sides}, attachments[i])
        for i, user in enumerate(users)
    ]


def _carried(url: str, name: str) -> Attachment | None:
    if not url:
        return None
    try:
        mime_type, data = from_data_url(url, MediaLimits(part_bytes=CARRIED_MEDIA_BYTES))
        kind_of(mime_type)
    except MediaError as err:
        raise InvalidArgument(
            f"the file {name!r} in the form's conversation cannot be read back ({err}): "
            "start a new conversation",
            "history_media",
        ) from None
    return Attachment(name, mime_type, data)


def _too_large(size: int) -> str:
    return (
        f"the conversation's files would be {size / 2**20:.1f} MiB; this page carries at most "
        f"{CARRIED_MEDIA_BYTES // 2**20} MiB of files in its form: send larger ones through the "
        "API (generateContent's inlineData or fileData, or chat completions' image_url), or "
        "start a new conversation"
    )


def attachment(
    name: str,
    declared_type: str,
    data: bytes,
    limits: MediaLimits,
    history: list[Exchange],
    size: int | None = None,
) -> Attachment:
    """An uploaded file as the next turn's attachment: its type told by its bytes (else by
    what the browser declared), checked as any media part is (``limits``: the settings'), and
    small enough for the form to carry with the files before it. ``size``: the whole file's,
    when ``data`` is only its start."""
    size = max(size or 0, len(data))
    if not size:
        raise InvalidArgument(f"file {name}: the file is empty", "media")
    carried = sum(len(e.attachment.data) for e in history if e.attachment is not None)
    if carried + size > CARRIED_MEDIA_BYTES:
        raise InvalidArgument(_too_large(carried + size), "media")
    declared = declared_type.split(";")[0].strip().lower()
    mime_type = sniffed_type(data) or (declared if declared in MIME_KINDS else None)
    if mime_type is None:
        raise InvalidArgument(
            f"file {name}: not a file of a known type; expected {SUPPORTED_TYPES}", "media"
        )
    mime_type = {"image/jpg": "image/jpeg"}.get(mime_type, mime_type)
    added = Attachment(name, mime_type, data)
    try:
        check_media_bytes(added.media(), data, limits)
    except MediaError as err:
        raise InvalidArgument(f"file {name}: {err}", "media") from None
    return added


def conversation_for(
    side: Side, chat: Chat, prompt: str, attached: Attachment | None = None
) -> Conversation:
    def user(text: str, attached: Attachment | None) -> Turn:
        return Turn("user", text, media=(attached.media(),) if attached else ())

    turns: list[Turn] = []
    for exchange in chat.history:
        turns += [user(exchange.user, exchange.attachment)]
        turns += [Turn("model", exchange.answers[side.key])]
    turns.append(user(prompt, attached))
    return Conversation(turns=tuple(turns), system=chat.system.strip() or None)


def answer(
    service: Service,
    project_id: str,
    chat: Chat,
    prompt: str,
    attached: Attachment | None = None,
) -> Chat:
    """Each side answers ``prompt`` (after ``attached``, the file sent with it) following the
    conversation so far (through the service's generation, one side after the other); the
    exchange is added to the chat."""
    if not prompt.strip():
        raise InvalidArgument("write a prompt", "prompt")
    params = chat.params()
    answers: dict[str, Answer] = {}
    for side in chat.sides:
        started = time.perf_counter()
        conversation = conversation_for(side, chat, prompt, attached)
        result = service.generation.generate(project_id, side.model, conversation, params)
        completion = result.completions[0]
        answers[side.key] = Answer(
            text=completion.text,
            finish_reason=completion.finish_reason,
            prompt_tokens=result.prompt_tokens,
            output_tokens=result.output_tokens,
            seconds=time.perf_counter() - started,
        )
    chat.history.append(Exchange(prompt, {key: a.text for key, a in answers.items()}, attached))
    chat.last = answers
    return chat


def training_system_instruction(service: Service, project_id: str, job: TuningJob | None) -> str:
    """The system instruction of the job's training data (its first example that has one),
    or "" for a base model, a file without one, or a training file since deleted."""
    if job is None:
        return ""
    try:
        path = service.files.dataset_path(project_id, job.training_file, "training_file")
    except TuneforgeError:  # deleted since, or a remote file this machine cannot fetch now
        return ""
    return first_system_instruction(path) or ""

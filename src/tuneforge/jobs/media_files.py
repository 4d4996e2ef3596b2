"""Media parts named by URI → their bytes, for one project; and a conversation's media resolved
and checked against the limits before anything reads it.

A part's URI is read by the same rules as a job's dataset (``datasets.resolve_dataset``): an
uploaded file's id (this project's only), a path under ``TUNEFORGE_DATASET_ROOTS``, or a
``gs://`` / ``s3://`` URI outside tuneforge's own store. An ``http(s)`` URL is fetched only
when the operator allows it (``TUNEFORGE_ALLOW_MEDIA_URLS``). Every refusal is an
``InvalidArgument`` naming the part's field path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import httpx

from tuneforge.config import Settings
from tuneforge.data.media import (
    KIND_WORDS,
    MIME_KINDS,
    NO_LIMITS,
    SUPPORTED_TYPES,
    Media,
    MediaError,
    MediaLimits,
    audio_seconds,
    check_media_bytes,
    media_limits,
    sniffed_type,
)
from tuneforge.data.media_check import MediaCheck, refused_kind
from tuneforge.data.media_tokenize import audio_window, media_token_counter
from tuneforge.data.records import Conversation, Example, PreferenceExample
from tuneforge.engine.methods.registry import TuningMethod
from tuneforge.errors import InvalidArgument
from tuneforge.inference.types import ModelTarget
from tuneforge.jobs.datasets import resolve_dataset
from tuneforge.models.loading import load_processor, media_kinds
from tuneforge.models.resolve import resolve_base_model
from tuneforge.store.db import Database

URL_TIMEOUT_S = 30.0  # connecting, and between two reads of a fetched media URL
URL_SCHEMES = ("http://", "https://")


class MediaSource(Protocol):
    def read(self, media: Media) -> bytes: ...


class MediaReader:
    """Reads the bytes of a project's media parts given by URI (inline parts are their own)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        project_id: str,
        *,
        limits: MediaLimits | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.project_id = project_id
        self.limits = limits or media_limits(settings)
        self._http = http

    def read(self, media: Media) -> bytes:
        if media.data is not None:
            return media.data
        uri = (media.uri or "").strip()
        if uri.lower().startswith(URL_SCHEMES):
            return self._fetch(uri, media.path)
        try:
            with self.db.session() as session:
                path = resolve_dataset(
                    session, self.settings, self.project_id, uri, param=media.path,
                    check_size=self.limits.check_bytes,  # a gs:// or s3:// fetch stops there
                )  # fmt: skip
        except MediaError as err:
            raise InvalidArgument(f"{media.path}: {uri!r}: {err}", media.path) from None
        return self._read_file(path, uri, media.path)

    def _read_file(self, path: Path, uri: str, field: str) -> bytes:
        try:
            size = path.stat().st_size
            if size > self.limits.part_bytes:  # refused before reading it into memory
                self.limits.check_bytes(size)
            return path.read_bytes()
        except MediaError as err:
            raise InvalidArgument(f"{field}: {err}", field) from None
        except OSError as err:
            raise InvalidArgument(
                f"{field}: {uri!r} cannot be read: {err.strerror}", field
            ) from None

    def _fetch(self, url: str, field: str) -> bytes:
        if not self.settings.allow_media_urls:
            raise InvalidArgument(
                f"{field}: this server does not fetch media from URLs"
                " (setting TUNEFORGE_ALLOW_MEDIA_URLS is off); send the bytes inline (a base64"
                " data URL, or inlineData) or upload the file (POST /v1/files) and name its id",
                field,
            )
        client = self._http or httpx.Client(timeout=URL_TIMEOUT_S, follow_redirects=True)
        try:
            with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise InvalidArgument(
                        f"{field}: fetching {url!r} answered HTTP {response.status_code}", field
                    )
                declared = response.headers.get("content-length", "")
                if declared.isdigit():
                    self.limits.check_bytes(int(declared))
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    self.limits.check_bytes(len(body))  # a server may send more than it declared
                return bytes(body)
        except MediaError as err:
            raise InvalidArgument(f"{field}: {url!r}: {err}", field) from None
        except httpx.HTTPError as err:
            reason = str(err) or type(err).__name__
            raise InvalidArgument(
                f"{field}: {url!r} could not be fetched: {reason}", field
            ) from None
        finally:
            if self._http is None:
                client.close()


def resolved(
    conversation: Conversation,
    reader: MediaSource,
    limits: MediaLimits,
    *,
    holder: str = "an example",
) -> Conversation:
    """The conversation with every media part's bytes read (and an unknown MIME type, an http
    image's, taken from the bytes), each part checked against ``limits``; ``holder`` is what the
    parts-per-example message calls the conversation ("a request")."""
    parts = conversation.media
    if not parts:
        return conversation
    if len(parts) > limits.parts_per_example:
        first_over = parts[limits.parts_per_example]
        raise InvalidArgument(
            f"{first_over.path}: {holder} holds at most {limits.parts_per_example:,} media parts;"
            f" this one has {len(parts):,} (TUNEFORGE_MAX_MEDIA_PARTS)",
            first_over.path,
        )
    turns = tuple(
        replace(turn, media=tuple(_checked(media, reader, limits) for media in turn.media))
        if turn.media
        else turn
        for turn in conversation.turns
    )
    return replace(conversation, turns=turns)


def resolved_example(example: Example, reader: MediaSource, limits: MediaLimits) -> Example:
    """``resolved`` for a dataset's example: a preference pair's media are in its prompt."""
    if isinstance(example, PreferenceExample):
        return replace(example, prompt=resolved(example.prompt, reader, limits))
    return resolved(example, reader, limits)


def _checked(media: Media, reader: MediaSource, limits: MediaLimits) -> Media:
    data = reader.read(media)
    try:
        if not media.mime_type:
            mime_type = sniffed_type(data)
            if mime_type is None or MIME_KINDS[mime_type] != media.kind:
                raise MediaError(
                    f"the bytes are not {KIND_WORDS[media.kind]} of a known type; expected "
                    + SUPPORTED_TYPES
                )
            media = replace(media, mime_type=mime_type)
        check_media_bytes(media, data, limits)
    except MediaError as err:
        raise InvalidArgument(f"{media.path}: {err}", media.path) from None
    return replace(media, data=data)


# --- what a model reads --------------------------------------------------------------------


def target_media_kinds(target: ModelTarget) -> frozenset[str]:
    """The media kinds the target reads: its own folder's config for full weights, else its
    base's (an adapter does not change what the model reads)."""
    return _media_kinds(str(target.weights_path or target.base_source))


@lru_cache(maxsize=64)
def _media_kinds(source: str) -> frozenset[str]:
    """``models.loading.media_kinds``, once per model folder: it reads the config from disk."""
    return media_kinds(source)


def refuse_unheard(conversation: Conversation, target: ModelTarget) -> None:
    """A 400 naming the first audio part (its bytes read) longer than the target hears: what
    its backend would refuse, found before any model loads."""
    audio = [media for media in conversation.media if media.kind == "audio"]
    if not audio:
        return
    window = _audio_window(target.base_source)  # a full fine-tune keeps its base's processor
    for media in audio:
        try:
            audio_seconds(media.data or b"", NO_LIMITS, window)
        except MediaError as err:
            raise InvalidArgument(f"{media.path}: {err}", media.path) from None


@lru_cache(maxsize=16)
def _audio_window(source: str) -> float | None:
    return audio_window(load_processor(source))


def refuse_unreadable(conversation: Conversation, model: str, kinds: frozenset[str]) -> None:
    """A 400 naming the first media part of a kind ``model`` cannot read: media are never
    dropped silently."""
    for media in conversation.media:
        if media.kind not in kinds:
            raise InvalidArgument(f"{media.path}: {refused_kind(media, model, kinds)}", media.path)


def media_check(
    db: Database,
    settings: Settings,
    project_id: str,
    base_model: str,
    method: TuningMethod,
    mode: str,
) -> MediaCheck:
    """How a job's datasets' media are checked: within the settings' limits, read by the
    project's rules, of kinds the method's trainer (in this mode) and the base model read (any,
    for a hub model not on this machine yet: the job checks again once it has it), and counted
    in tokens through its processor."""
    rules = media_rules(settings, base_model, MediaReader(db, settings, project_id).read)
    if mode == "full" and method.media_lora_only:
        return replace(
            rules, method=f"the {method.name} method on all weights", method_reads=frozenset()
        )
    return replace(rules, method=f"the {method.name} method", method_reads=method.media)


def media_rules(
    settings: Settings, base_model: str, read: Callable[[Media], bytes] | None
) -> MediaCheck:
    """The media check for ``base_model``; ``read`` reads parts given by URI (None: only
    inline parts are decoded, as a local ``tuneforge datasets validate`` does)."""
    limits = media_limits(settings)
    source = resolve_base_model(base_model, settings).source
    kinds = media_kinds(source) if Path(source).is_dir() else None
    if not kinds:
        return MediaCheck(limits=limits, read=read, accepts=kinds, model=base_model)
    processor = load_processor(source)
    window = audio_window(processor)
    count = media_token_counter(processor, read or inline_bytes, limits, window)
    return MediaCheck(limits, read, kinds, base_model, window, count)


def inline_bytes(media: Media) -> bytes:
    if media.data is None:
        raise MediaError(f"the file {media.uri!r} is read where the job runs")
    return media.data

"""Media in examples and requests: images, PDF documents and audio.

A media part is kept as it was given (:class:`Media`: inline bytes, or a file URI that the
layers above resolve), checked against :class:`MediaLimits`, and decoded only when something
needs its content: an image to RGB pixels (PNG, JPEG, WebP, GIF's first frame; pillow), a PDF to
one image per page (pypdfium2), audio to a mono waveform at the model's sampling rate (WAV,
FLAC, MP3 through libsndfile; soxr resamples). Every failure is a :class:`MediaError` whose
message says what is wrong with the part in words a user can act on; the caller adds where the
part is (line and field path).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image

    from tuneforge.config import Settings

MediaKind = Literal["image", "document", "audio"]

# The MIME types each kind accepts, with the spellings clients send for the same thing.
MIME_KINDS: dict[str, MediaKind] = {
    "image/png": "image",
    "image/jpeg": "image",
    "image/jpg": "image",
    "image/webp": "image",
    "image/gif": "image",
    "application/pdf": "document",
    "audio/wav": "audio",
    "audio/x-wav": "audio",
    "audio/wave": "audio",
    "audio/vnd.wave": "audio",
    "audio/mpeg": "audio",
    "audio/mp3": "audio",
    "audio/flac": "audio",
    "audio/x-flac": "audio",
}
SUPPORTED_TYPES = "PNG, JPEG, WebP or GIF images, PDF documents, WAV, MP3 or FLAC audio"
# OpenAI's input_audio names the format, not the MIME type.
AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac"}
KIND_WORDS = {"image": "images", "document": "PDF documents", "audio": "audio"}


class MediaError(ValueError):
    """A media part that cannot be used; the message names what is wrong with it."""


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """What one example or request may hold (settings ``TUNEFORGE_MAX_MEDIA_*``)."""

    parts_per_example: int = 64
    part_bytes: int = 20 * 1024 * 1024  # Vertex's inline-data limit
    image_pixels: int = 40_000_000  # decoding bombs: a 64k x 64k PNG is 100 KB on disk
    pdf_pages: int = 32
    audio_seconds: float = 600.0

    def check_bytes(self, size: int) -> None:
        if size > self.part_bytes:
            raise MediaError(
                f"the part holds {size:,} bytes; at most {self.part_bytes:,} are allowed"
                " (TUNEFORGE_MAX_MEDIA_BYTES)"
            )


# For decoding parts whose limits were already applied (the service checks a request's media
# before the inference decodes them): nothing is refused for its size.
NO_LIMITS = MediaLimits(sys.maxsize, sys.maxsize, sys.maxsize, sys.maxsize, math.inf)


@dataclass(frozen=True, slots=True)
class Media:
    """One media part as given: its kind and MIME type, and either its bytes (inline, base64
    decoded) or the URI of a file holding them (an uploaded file's id, a path under the dataset
    roots, ``gs://`` or ``s3://``)."""

    kind: MediaKind
    mime_type: str
    data: bytes | None = None
    uri: str | None = None
    path: str = ""  # where the part is in its line or request, for messages

    def describe(self) -> str:
        source = f"file {self.uri!r}" if self.uri else f"{len(self.data or b''):,} inline bytes"
        return f"{self.mime_type}, {source}"


def kind_of(mime_type: str) -> MediaKind:
    kind = MIME_KINDS.get(mime_type.strip().lower())
    if kind is None:
        raise MediaError(f"unsupported MIME type {mime_type!r}; expected {SUPPORTED_TYPES}")
    return kind


def decode_base64(text: str, limits: MediaLimits | None = None) -> bytes:
    """Base64 text (standard or URL-safe alphabet, padding optional) as bytes; with ``limits``,
    refused past the size limit before decoding."""
    if limits is not None:
        limits.check_bytes(len(text) * 3 // 4)
    compact = re.sub(r"\s+", "", text)
    if "-" in compact or "_" in compact:
        compact = compact.translate(str.maketrans("-_", "+/"))
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise MediaError("the data is not valid base64") from None


DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)(?:;[^,;]*)*;base64,(?P<data>.*)", re.S)


def from_data_url(url: str, limits: MediaLimits | None = None) -> tuple[str, bytes]:
    """A ``data:<mime>;base64,<data>`` URL's MIME type and bytes."""
    match = DATA_URL.fullmatch(url)
    if match is None:
        raise MediaError("expected a base64 data URL like data:image/png;base64,...")
    return match["mime"].lower(), decode_base64(match["data"], limits)


# --- what the bytes really are --------------------------------------------------------------

SIGNATURES: tuple[tuple[Callable[[bytes], bool], str], ...] = (
    (lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"), "image/png"),
    (lambda b: b.startswith(b"\xff\xd8\xff"), "image/jpeg"),
    (lambda b: b[:6] in (b"GIF87a", b"GIF89a"), "image/gif"),
    (lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP", "image/webp"),
    (lambda b: b[:5] == b"%PDF-", "application/pdf"),
    (lambda b: b[:4] in (b"RIFF", b"RF64") and b[8:12] == b"WAVE", "audio/wav"),
    (lambda b: b[:4] == b"fLaC", "audio/flac"),
    (lambda b: b[:3] == b"ID3" or (b[:1] == b"\xff" and b[1:2] >= b"\xe0"), "audio/mpeg"),
)


def sniffed_type(data: bytes) -> str | None:
    """The MIME type the bytes' own signature says, or None when none matches."""
    return next((mime for test, mime in SIGNATURES if test(data)), None)


def check_type(media: Media, data: bytes) -> None:
    """Refuse bytes of another kind than declared (a PDF sent as image/png)."""
    actual = sniffed_type(data)
    if actual is not None and MIME_KINDS[actual] != media.kind:
        raise MediaError(f"declared {media.mime_type}, but the bytes are {actual}")


# --- decoding ------------------------------------------------------------------------------


def decode_image(data: bytes, limits: MediaLimits) -> Image:
    """The image's first frame as RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise MediaError("the bytes are not an image pillow can read") from None
    if image.format not in ("PNG", "JPEG", "WEBP", "GIF", "MPO"):
        raise MediaError(f"{image.format} images are not supported; expected {SUPPORTED_TYPES}")
    width, height = image.size
    if width * height > limits.image_pixels:
        raise MediaError(
            f"the image is {width}x{height} pixels; at most {limits.image_pixels:,} pixels are"
            " allowed (TUNEFORGE_MAX_MEDIA_PIXELS)"
        )
    try:
        image.seek(0)  # an animated GIF or WebP: its first frame
        image.load()
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data
        raise MediaError(f"the image cannot be decoded: {err}") from None
    return image.convert("RGB")


PDF_RENDER_LONG_SIDE = 1024  # pixels; models' processors resize to far less


def render_pdf(data: bytes, limits: MediaLimits) -> list[Image]:
    """Each page of a PDF as an RGB image, its longer side at most PDF_RENDER_LONG_SIDE."""
    import pypdfium2 as pdfium

    document = _open_pdf(data)
    try:
        _check_pages(len(document), limits)
        images = []
        for page in document:
            width, height = page.get_size()  # points: 1/72 inch
            scale = min(2.0, PDF_RENDER_LONG_SIDE / max(width, height, 1.0))
            images.append(page.render(scale=scale).to_pil().convert("RGB"))
            page.close()
        return images
    except pdfium.PdfiumError as err:
        raise MediaError(f"a page of the PDF cannot be rendered: {err}") from None
    finally:
        document.close()


def pdf_page_count(data: bytes, limits: MediaLimits) -> int:
    """The number of pages, checked against the limit, without rendering them."""
    document = _open_pdf(data)
    try:
        pages = len(document)
    finally:
        document.close()
    return _check_pages(pages, limits)


def _open_pdf(data: bytes):
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as err:
        if getattr(err, "err_code", None) == 0 and data.startswith(b"%PDF-"):
            # PDFium reports success, yet opens nothing: a well-formed PDF without pages.
            raise MediaError("the PDF has no pages") from None
        raise MediaError(f"the bytes are not a PDF that can be opened: {err}") from None


def _check_pages(pages: int, limits: MediaLimits) -> int:
    if pages == 0:
        raise MediaError("the PDF has no pages")
    if pages > limits.pdf_pages:
        raise MediaError(
            f"the PDF has {pages} pages; at most {limits.pdf_pages} are allowed"
            " (TUNEFORGE_MAX_PDF_PAGES)"
        )
    return pages


def audio_seconds(data: bytes, limits: MediaLimits, max_seconds: float | None = None) -> float:
    """The audio's length, checked against the limit (and ``max_seconds``, what the model
    hears), read from its header without decoding it."""
    import soundfile

    try:
        info = soundfile.info(io.BytesIO(data))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as err:
        raise MediaError(f"the bytes are not WAV, MP3 or FLAC audio: {err}") from None
    seconds = info.frames / info.samplerate if info.samplerate else 0.0
    if seconds <= 0:
        raise MediaError("the audio holds no samples")
    if seconds > limits.audio_seconds:
        raise MediaError(
            f"the audio is {_duration(seconds)} long; at most {_duration(limits.audio_seconds)}"
            " is allowed (TUNEFORGE_MAX_AUDIO_SECONDS)"
        )
    if max_seconds is not None and seconds > max_seconds + 0.05:
        raise MediaError(
            f"the audio is {_duration(seconds)} long; the model hears at most"
            f" {_duration(max_seconds)} of it: cut it into parts that long"
        )
    return seconds


def decode_audio(
    data: bytes, sampling_rate: int, limits: MediaLimits, max_seconds: float | None = None
) -> np.ndarray:
    """The audio as one float32 channel (channels averaged) at ``sampling_rate``."""
    import numpy as np
    import soundfile
    import soxr

    audio_seconds(data, limits, max_seconds)
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as err:
        raise MediaError(f"the audio cannot be decoded: {err}") from None
    mono = samples.mean(axis=1)
    if rate != sampling_rate:
        mono = soxr.resample(mono, rate, sampling_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {rest:02d} s"


def check_media_bytes(
    media: Media, data: bytes, limits: MediaLimits, audio_window: float | None = None
) -> None:
    """Everything about a part that its bytes decide: the size, the kind, that it decodes,
    and the page and length limits."""
    limits.check_bytes(len(data))
    check_type(media, data)
    if media.kind == "image":
        decode_image(data, limits)
    elif media.kind == "document":
        pdf_page_count(data, limits)
    else:
        audio_seconds(data, limits, audio_window)


def media_limits(settings: Settings) -> MediaLimits:
    """The limits the settings ``TUNEFORGE_MAX_MEDIA_*``, ``_MAX_PDF_PAGES`` and
    ``_MAX_AUDIO_SECONDS`` set."""
    return MediaLimits(
        parts_per_example=settings.max_media_parts,
        part_bytes=settings.max_media_bytes,
        image_pixels=settings.max_media_pixels,
        pdf_pages=settings.max_pdf_pages,
        audio_seconds=settings.max_audio_seconds,
    )

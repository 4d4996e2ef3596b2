"""``generate --image/--pdf/--audio``: local files as inline media parts of the user's turn.

A file is read here, its type told by its bytes (by its extension when they say nothing), and
sent as its bytes; the service checks it against the limits and refuses it for a model that
cannot read its kind, naming the option and the path as the part's field.
"""

from __future__ import annotations

from pathlib import Path

from tuneforge.data.media import (
    MIME_KINDS,
    SUPPORTED_TYPES,
    Media,
    MediaError,
    MediaKind,
    MediaLimits,
    sniffed_type,
)
from tuneforge.errors import InvalidArgument

OPTIONS: dict[MediaKind, str] = {"image": "--image", "document": "--pdf", "audio": "--audio"}
A_KIND: dict[MediaKind, str] = {"image": "an image", "document": "a PDF", "audio": "audio"}
EXTENSIONS = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".pdf": "application/pdf",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
}


def media_part(kind: MediaKind, path: Path, limits: MediaLimits) -> Media:
    """The file at ``path``, given with the option of ``kind``, as an inline media part; an
    InvalidArgument naming the option and the path when it cannot be read or is of another
    kind."""
    option = OPTIONS[kind]
    where = f"{option} {path}"
    try:
        if path.is_dir():
            raise InvalidArgument(f"{where}: is a folder, not a file", option)
        size = path.stat().st_size
        limits.check_bytes(size)  # before reading gigabytes into memory
        data = path.read_bytes()
    except FileNotFoundError:
        raise InvalidArgument(f"{where}: no such file", option) from None
    except OSError as err:
        raise InvalidArgument(f"{where}: cannot read it: {err.strerror or err}", option) from None
    except MediaError as err:
        raise InvalidArgument(f"{where}: {err}", option) from None
    mime_type = sniffed_type(data) or EXTENSIONS.get(path.suffix.lower())
    if mime_type is None:
        raise InvalidArgument(
            f"{where}: neither its bytes nor its name say what it is; expected {SUPPORTED_TYPES}",
            option,
        )
    actual = MIME_KINDS[mime_type]
    if actual != kind:
        raise InvalidArgument(
            f"{where}: the file is {mime_type}, not {A_KIND[kind]}; give it with {OPTIONS[actual]}",
            option,
        )
    return Media(kind, mime_type, data=data, path=where)


def media_parts(
    images: list[Path], pdfs: list[Path], audio: list[Path], limits: MediaLimits
) -> tuple[Media, ...]:
    """Every file given, in the order images, documents, audio (each as given)."""
    given: list[tuple[MediaKind, list[Path]]] = [
        ("image", images),
        ("document", pdfs),
        ("audio", audio),
    ]
    return tuple(media_part(kind, path, limits) for kind, paths in given for path in paths)

"""Object URIs, fsspec style: ``file:///abs/path`` here, ``s3://bucket/key`` for an object store.

A URI is ``protocol://path`` with the path as fsspec spells it, not percent-encoded (RFC 8089
would write a space as ``%20``; fsspec's ``file://`` would then name another file). So
``fsspec.open(uri)`` opens exactly the object a row names, and a path with a space, ``%`` or
``#`` in it round-trips unchanged.

Rows written before the storage seam hold plain paths; a string without a scheme is a local
path, read as it always was.
"""

from __future__ import annotations

import re
from pathlib import Path

FILE = "file"
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


class StorageError(ValueError):
    """A URI this storage cannot address, or a change it must refuse: a configuration or
    programming problem, never the user's (surfaces answer it as an internal error)."""


def scheme_of(uri: str) -> str | None:
    """The URI's protocol in lower case (``file``, ``s3``), or None for a plain path."""
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match else None


def file_uri(path: Path) -> str:
    """The ``file://`` URI of a local path (made absolute, symlinks kept as written)."""
    return f"{FILE}://{Path(path).absolute()}"


def local_file(uri: str) -> Path:
    """The local path a ``file://`` URI or a plain path (an old row) names; StorageError for
    any other scheme."""
    scheme = scheme_of(uri)
    if scheme is None:
        return Path(uri)
    if scheme != FILE:
        raise StorageError(f"{scheme}:// is not a local file")
    path = uri[len(FILE) + 3 :]
    if not path.startswith("/"):
        raise StorageError(f"{uri!r}: a file URI needs an absolute path (file:///...)")
    return Path(path)

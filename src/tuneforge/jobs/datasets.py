"""A job's dataset reference → a local file: an uploaded file, an allowed path, or a remote URI.

Anything else is refused, so a dataset URI can never read an arbitrary file of the server.
``s3://`` is read through obstore with the S3 settings of tuneforge's own store (its endpoint
and credentials), but never inside that store's prefix, where other projects' uploads live;
``gs://`` through fsspec's gcsfs when installed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from sqlalchemy.orm import Session

from tuneforge.config import Settings
from tuneforge.data.media_check import MediaCheck
from tuneforge.data.records import Task, ValidationReport
from tuneforge.data.validate import (
    MIN_EXAMPLES,
    RECOMMENDED_EXAMPLES,
    first_errors,
    validate_dataset,
)
from tuneforge.errors import InvalidArgument, NotFound
from tuneforge.storage import s3_options, storage_for
from tuneforge.storage.object_store import S3Location, is_plain_key, read_object
from tuneforge.store import repo

log = logging.getLogger("tuneforge.datasets")

# The packages each remote scheme is read through.
REMOTE_SCHEMES = {"gs": ("fsspec", "gcsfs"), "s3": ("obstore",)}
DOWNLOAD_CHUNK = 1 << 20
S3_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def file_id_of(reference: str) -> str | None:
    """The file id in ``file-...`` or ``files/file-...``, else None."""
    reference = reference.removeprefix("files/")
    return reference if reference.startswith("file-") else None


def is_remote(reference: str) -> bool:
    scheme, sep, _ = reference.partition("://")
    return bool(sep) and scheme in REMOTE_SCHEMES


def validate_for_job(
    path: Path,
    task: Task,
    param: str,
    *,
    tokenizer=None,
    max_length: int | None = None,
    keep_examples: bool = True,
    media: MediaCheck | None = None,
) -> ValidationReport:
    """A job's dataset, checked as the job trains on it: a training file needs MIN_EXAMPLES
    examples, a validation file one. Without ``keep_examples`` the report holds only the
    verdict, and validating takes little memory whatever the file's size. ``media``: how its
    media parts are checked (jobs/media_files.media_check)."""
    training = param == "training_file"
    return validate_dataset(
        path,
        task=task,
        tokenizer=tokenizer,
        max_length=max_length,
        min_examples=MIN_EXAMPLES if training else 1,
        recommended_examples=RECOMMENDED_EXAMPLES if training else 1,
        keep_examples=keep_examples,
        media=media,
    )


def refuse_invalid_dataset(
    session: Session,
    settings: Settings,
    project_id: str,
    reference: str,
    param: str,
    task: Task,
    media: MediaCheck | None = None,
) -> None:
    """Refuse, with a message naming ``param`` and the file's first errors, a dataset a job
    could never read or would fail on. A remote URI is validated by the job once fetched."""
    path = resolve_dataset(session, settings, project_id, reference, param, fetch=False)
    if is_remote(reference):
        return
    report = validate_for_job(path, task, param, keep_examples=False, media=media)
    if not report.ok:
        raise InvalidArgument(
            f"{param}: {reference!r} is not a valid {task} dataset: "
            + first_errors(report.problems, report.error_count),
            param,
        )


def resolve_dataset(
    session: Session,
    settings: Settings,
    project_id: str,
    reference: str,
    param: str,
    *,
    fetch: bool = True,
    cache_dir: Path | None = None,
    check_size: Callable[[int], None] | None = None,
) -> Path:
    """The local file ``reference`` names: an uploaded file of the project, a path under the
    dataset roots, or a gs:// / s3:// object fetched into the cache. ``check_size`` is called
    with the bytes fetched so far and may raise to stop a fetch that grows too large."""
    if file_id := file_id_of(reference):
        try:
            uri = repo.get_file(session, project_id, file_id).path
            return storage_for(settings).local_path(uri)
        except NotFound:
            raise InvalidArgument(f"{param}: no file {file_id!r} in this project", param) from None
    scheme, sep, _ = reference.partition("://")
    if is_remote(reference):
        cache_dir = cache_dir or storage_for(settings).cache_dir
        return _remote(reference, settings, param, fetch, cache_dir, check_size)
    if sep:
        raise InvalidArgument(
            f"{param}: unsupported URI scheme {scheme!r}; use an uploaded file id, a path under "
            "TUNEFORGE_DATASET_ROOTS, or gs:// / s3://",
            param,
        )
    path = Path(reference).expanduser().resolve()
    roots = [root.expanduser().resolve() for root in settings.dataset_roots]
    if not any(path.is_relative_to(root) for root in roots):
        raise InvalidArgument(
            f"{param}: {reference!r} is not an uploaded file and not under a dataset root "
            "(TUNEFORGE_DATASET_ROOTS); upload it with POST /v1/files",
            param,
        )
    if not path.is_file():
        raise InvalidArgument(f"{param}: no such file {reference!r}", param)
    return path


def _remote(
    uri: str,
    settings: Settings,
    param: str,
    fetch: bool,
    cache_dir: Path,
    check_size: Callable[[int], None] | None = None,
) -> Path:
    scheme = uri.partition("://")[0]
    missing = [name for name in REMOTE_SCHEMES[scheme] if importlib.util.find_spec(name) is None]
    if missing:
        raise InvalidArgument(
            f"{param}: reading {scheme}:// URIs needs the packages {' and '.join(missing)}", param
        )
    if scheme == "s3":
        bucket, key = _s3_object(uri, settings, param)
        chunks = partial(read_object, bucket, key, s3_options(settings))
    else:
        chunks = partial(_fsspec_chunks, uri)
    target = cache_dir / cache_name(uri)
    if fetch:
        _download(chunks, target, uri, param, check_size)
    return target


def _s3_object(uri: str, settings: Settings, param: str) -> tuple[str, str]:
    """(bucket, key) of an ``s3://bucket/key`` URI a user may read: not an object of
    tuneforge's own store, where every project's uploads and results live. The bucket must be
    a plain S3 bucket name: it goes into the request's URL unescaped, where ``..`` or ``?``
    would address another bucket than the one checked."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if (
        not S3_BUCKET_NAME.fullmatch(bucket)
        or ".." in bucket
        or not is_plain_key(key)
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in key)
    ):
        raise InvalidArgument(
            f"{param}: {uri!r} is not s3://bucket/key (a bucket is 3-63 lowercase letters, "
            "digits, dots and hyphens; a key has no empty, '.' or '..' parts)",
            param,
        )
    if settings.storage_url and S3Location.parse(settings.storage_url).holds(bucket, key):
        raise InvalidArgument(
            f"{param}: {uri!r} is inside tuneforge's own storage ({settings.storage_url}); "
            "name an uploaded file by its id",
            param,
        )
    return bucket, key


def _fsspec_chunks(uri: str) -> Iterator[bytes]:
    import fsspec

    with fsspec.open(uri, "rb") as source:
        while chunk := source.read(DOWNLOAD_CHUNK):
            yield chunk


def cache_name(uri: str) -> str:
    """The cache file of a URI: named by its hash, so the URI's own path ("gs://b/../../x")
    never picks where it goes; its extension is kept, as readers go by it."""
    suffix = Path(uri).suffix
    keep = suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,15}", suffix) else ""
    return hashlib.sha256(uri.encode()).hexdigest() + keep


def _download(
    chunks: Callable[[], Iterator[bytes]],
    target: Path,
    uri: str,
    param: str,
    check_size: Callable[[int], None] | None = None,
) -> None:
    """Fetch into a private temporary file, then rename it into place: jobs reading the same
    URI at once never see (or write into) each other's half-written copy. A store's refusal
    (no such object, no access) is the user's to fix, so it names the URI."""
    import obstore.exceptions

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".partial-", delete=False) as sink:
        partial_file = Path(sink.name)
        try:
            written = 0
            for chunk in chunks():
                written += len(chunk)
                if check_size is not None:
                    check_size(written)
                sink.write(chunk)
        except BaseException as err:
            sink.close()
            partial_file.unlink(missing_ok=True)
            if isinstance(err, FileNotFoundError | obstore.exceptions.NotFoundError):
                raise InvalidArgument(f"{param}: there is no object at {uri!r}", param) from None
            if isinstance(err, OSError | obstore.exceptions.BaseError):
                # The store's own message names its internal address: it goes to the log.
                log.warning("reading %s failed", uri, exc_info=True)
                raise InvalidArgument(
                    f"{param}: {uri!r} cannot be read: {_unreadable_reason(err)}", param
                ) from None
            raise
    partial_file.replace(target)


def _unreadable_reason(err: BaseException) -> str:
    import obstore.exceptions

    if isinstance(err, PermissionError | obstore.exceptions.PermissionDeniedError):
        return "access is denied"
    if isinstance(err, obstore.exceptions.UnauthenticatedError):
        return "the credentials were refused"
    return "the store did not serve it (the server's log has the details)"

"""Where uploads, job folders (checkpoints, logs, metrics.csv, loss curve), the dataset cache,
built-in models and the local API key live: the one place that knows.

Objects (uploads, checkpoints, a job's results) are addressed by URI, and rows store that URI
(``File.path``, ``Checkpoint.path``); a row written before this seam holds a plain path, which
is a local file. URIs are fsspec's (``file:///abs/path``, ``s3://bucket/key``), not a
tuneforge-relative scheme: a row then says where its object is, whichever storage wrote it, so
rows of the local disk and of an object store can live side by side while a deployment moves,
and any fsspec client opens them without tuneforge's settings.

Training, inference and validation need local files: ``local_path`` gives one for a URI
(LocalStorage: the path itself; an object store: a cached copy), a job trains into the local
``job_dir`` and ``publish`` turns what it wrote there into a URI (an object store uploads it).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

from tuneforge.config import Settings
from tuneforge.storage.local import LocalStorage
from tuneforge.storage.object_store import ObjectStorage, S3Options
from tuneforge.storage.uri import StorageError, file_uri, local_file, scheme_of


@runtime_checkable
class Storage(Protocol):
    """What the service, the jobs and the CLI ask of the storage. Runtime-checkable, so a test
    can hold each implementation to every member."""

    #: Local folders of this machine, whatever holds the objects.
    models_dir: Path  # built-in tiny models, and base models by name
    cache_dir: Path  # remote datasets fetched for jobs
    local_key_path: Path  # project default's API key for the local CLI

    @property
    def location(self) -> str:
        """Where the objects live, for people (a folder, a bucket)."""
        ...

    def prepare(self) -> None:
        """Create what must exist before the service starts."""
        ...

    def upload_uri(self, file_id: str) -> str:
        """The URI an upload is stored at."""
        ...

    def job_uri(self, job_id: str, name: str) -> str:
        """The URI of a job's object (``metrics.csv``, ``loss_curve.png``)."""
        ...

    def job_dir(self, job_id: str) -> Path:
        """The local folder a job trains into: checkpoints, logs, metrics.csv, loss curve."""
        ...

    def fetch_job(self, job_id: str) -> Path:
        """``job_dir``, holding every save the job has published (an object store downloads
        them): what a run starts from, so a job resumes on any machine."""
        ...

    def release_job(self, job_id: str) -> None:
        """The job's run on this machine has ended: make durable what changed in its folder
        since the last publish, and free what need not stay on this machine."""
        ...

    def local_path(self, uri: str) -> Path:
        """A local path holding the object (a file or a checkpoint folder) at ``uri``, or the
        plain path of an old row."""
        ...

    def publish(self, path: Path) -> str:
        """Make a file or folder a job wrote under its ``job_dir`` durable; return its URI."""
        ...

    def exists(self, uri: str) -> bool: ...

    def read_bytes(self, uri: str) -> bytes: ...

    def write_upload(self, file_id: str, chunks: Iterable[bytes]) -> str:
        """Store an upload atomically and immutably; return its URI. If ``chunks`` raises,
        nothing is stored."""
        ...

    def delete_upload(self, uri: str) -> bool:
        """Remove an upload, and nothing that is not one; return whether it removed."""
        ...

    def delete_job(self, job_id: str) -> None:
        """Remove everything a job wrote (checkpoints, metrics); nothing if it wrote nothing."""
        ...

    def idle_uploads(self, idle_for_s: float) -> list[str]:
        """The URIs of uploads, finished or still being written, that nothing has written to
        for ``idle_for_s`` seconds: what a killed upload may have left behind."""
        ...


def storage_for(settings: Settings) -> Storage:
    """The storage these settings name: ObjectStorage when ``storage_url`` names a bucket,
    else LocalStorage on the data dir."""
    if settings.storage_url:
        return ObjectStorage(
            settings.storage_url,
            settings.data_dir,
            s3_options(settings),
            cache_max_bytes=settings.object_cache_bytes,
        )
    return LocalStorage(settings.data_dir)


def s3_options(settings: Settings) -> S3Options:
    """How to reach S3: the store's bucket, and any ``s3://`` URI a job names."""
    return S3Options(
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
    )


__all__ = [
    "LocalStorage",
    "ObjectStorage",
    "Storage",
    "StorageError",
    "file_uri",
    "local_file",
    "s3_options",
    "scheme_of",
    "storage_for",
]

"""LocalStorage: every object is a file under one local folder, the data dir.

The layout under the root, known here only:

    files/<file_id>.jsonl    uploads, read-only (0444) once complete
    jobs/<job_id>/           a job's folder: checkpoints (epoch-N/), logs/, metrics.csv,
                             loss_curve.png
    models/                  built-in tiny models, and base models by name
    cache/                   remote datasets fetched for jobs (gs://, s3://)
    api_key                  project default's key for the local CLI (0600)

(The SQLite database, ``tuneforge.db``, is config's: it is not an object of the storage.)
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from tuneforge.storage.uri import StorageError, file_uri, local_file

# Ids become file and folder names: one plain segment, never "..", never a separator.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
UPLOAD_SUFFIX = ".jsonl"
PARTIAL_SUFFIX = ".partial"


def segment(value: str, what: str) -> str:
    if not _SAFE_ID.fullmatch(value) or ".." in value:
        raise StorageError(f"{what} {value!r} is not a plain name")
    return value


class LocalStorage:
    """Objects as files under ``root``; ``local_path`` of a URI is the path itself."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.files_dir = self.root / "files"
        self.jobs_dir = self.root / "jobs"
        self.models_dir = self.root / "models"
        self.cache_dir = self.root / "cache"
        self.local_key_path = self.root / "api_key"

    @property
    def location(self) -> str:
        return str(self.root)

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    # -- addressing ------------------------------------------------------------------------

    def upload_uri(self, file_id: str) -> str:
        return file_uri(self.files_dir / (segment(file_id, "file id") + UPLOAD_SUFFIX))

    def job_uri(self, job_id: str, name: str) -> str:
        return file_uri(self.job_dir(job_id) / segment(name, "object name"))

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / segment(job_id, "job id")

    def fetch_job(self, job_id: str) -> Path:
        """The job's folder: its saves are already there."""
        return self.job_dir(job_id)

    def release_job(self, job_id: str) -> None:
        """Nothing to do: the job's folder is where its objects stay."""

    def local_path(self, uri: str) -> Path:
        """The file itself. Any local file a row names is readable: rows are written by
        tuneforge only, and old rows may name files of an earlier data dir."""
        return local_file(uri)

    def publish(self, path: Path) -> str:
        """Its file URI: the file is already where it stays. A path outside the root is
        refused, so every row written from now on names an object of this storage."""
        if not self._is_inside(Path(path), self.root):
            raise StorageError(f"{path} is outside the storage root {self.root}")
        return file_uri(path)

    # -- reading and changing objects ------------------------------------------------------

    def exists(self, uri: str) -> bool:
        return self.local_path(uri).is_file()

    def read_bytes(self, uri: str) -> bytes:
        return self.local_path(uri).read_bytes()

    def write_upload(self, file_id: str, chunks: Iterable[bytes]) -> str:
        """Write to ``<id>.partial`` and rename into place when complete, then make it
        read-only: no one ever sees a partial upload at the upload's URI, and an upload never
        changes after. If ``chunks`` raises (an upload over the limit), nothing is left."""
        uri = self.upload_uri(file_id)
        target = self.local_path(uri)
        partial = target.with_suffix(PARTIAL_SUFFIX)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with partial.open("wb") as sink:
                for chunk in chunks:
                    sink.write(chunk)
            partial.rename(target)
            target.chmod(0o444)
        finally:
            partial.unlink(missing_ok=True)
        return uri

    def delete_upload(self, uri: str) -> bool:
        """Remove an upload; an object outside the uploads (a job's metrics.csv registered as
        a result file) is not the upload's to delete and stays. Returns whether it removed."""
        path = self.local_path(uri)
        if not self._is_inside(path, self.files_dir):
            return False
        path.unlink(missing_ok=True)
        return True

    def delete_job(self, job_id: str) -> None:
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def idle_uploads(self, idle_for_s: float) -> list[str]:
        if not self.files_dir.is_dir():
            return []
        idle_since = time.time() - idle_for_s
        return [
            file_uri(path)
            for path in self.files_dir.iterdir()
            if path.suffix in (UPLOAD_SUFFIX, PARTIAL_SUFFIX)
            and path.is_file()
            and path.stat().st_mtime < idle_since
        ]

    @staticmethod
    def _is_inside(path: Path, folder: Path) -> bool:
        """Whether ``path`` really lies under ``folder``, symlinks and ``..`` followed."""
        return path.resolve().is_relative_to(folder.resolve())

"""Uploaded datasets: streamed to disk under a size limit, immutable, validated on arrival."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

from tuneforge.config import Settings
from tuneforge.data.report import to_json as report_to_json
from tuneforge.data.validate import validate_any_task
from tuneforge.errors import InvalidArgument
from tuneforge.jobs.datasets import resolve_dataset
from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.models import File

UPLOAD_CHUNK = 1 << 20


class UploadTooLarge(InvalidArgument):
    """An upload over the configured limit (HTTP 413)."""

    @classmethod
    def over(cls, limit: int) -> UploadTooLarge:
        return cls(
            f"the file is larger than the upload limit of {limit} bytes "
            "(TUNEFORGE_MAX_UPLOAD_BYTES)",
            param="file",
        )


class FileService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def upload(self, project_id: str, filename: str, stream: BinaryIO, purpose: str) -> File:
        """Stream an upload to disk (refusing it past the size limit), store it immutably with
        its sha256, and validate it on arrival."""
        file_id = repo.new_file_id()
        folder = self.settings.files_dir
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{file_id}.jsonl"
        partial = target.with_suffix(".partial")
        digest, size = hashlib.sha256(), 0
        try:
            with partial.open("wb") as sink:
                while chunk := stream.read(UPLOAD_CHUNK):
                    size += len(chunk)
                    if size > self.settings.max_upload_bytes:
                        raise UploadTooLarge.over(self.settings.max_upload_bytes)
                    digest.update(chunk)
                    sink.write(chunk)
            partial.rename(target)
            target.chmod(0o444)
        finally:
            partial.unlink(missing_ok=True)
        report = validate_any_task(target)
        try:
            with self.db.session() as s:
                repo.ensure_project(s, project_id)
                return repo.create_file(
                    s,
                    project_id,
                    file_id=file_id,
                    filename=filename,
                    bytes=size,
                    sha256=digest.hexdigest(),
                    purpose=purpose,
                    path=str(target),
                    status="processed" if report.ok else "error",
                    format=report.format.value if report.format else None,
                    example_count=len(report.examples),
                    validation=report_to_json(report),
                )
        except BaseException:
            target.unlink(missing_ok=True)  # no row points at it: do not keep it
            raise

    def get(self, project_id: str, file_id: str) -> File:
        with self.db.session() as s:
            return repo.get_file(s, project_id, file_id)

    def list(self, project_id: str, *, purpose=None, limit=20, after=None) -> repo.Page:
        with self.db.session() as s:
            return repo.list_files(s, project_id, purpose=purpose, limit=limit, after=after)

    def delete(self, project_id: str, file_id: str) -> File:
        with self.db.session() as s:
            row = repo.delete_file(s, project_id, file_id)
        path = Path(row.path)
        # A job's result file (metrics.csv) lives in the job's folder: it is not ours to delete.
        if path.resolve().is_relative_to(self.settings.files_dir.resolve()):
            path.unlink(missing_ok=True)
        return row

    def dataset_path(self, project_id: str, reference: str, param: str) -> Path:
        """A local copy of the dataset a reference names (an uploaded file, an allowed path,
        or a fetched remote URI)."""
        with self.db.session() as s:
            return resolve_dataset(s, self.settings, project_id, reference, param)

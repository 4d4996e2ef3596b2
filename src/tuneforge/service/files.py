"""Uploaded datasets: streamed to the storage under a size limit, immutable, validated on
arrival."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from tuneforge.config import Settings
from tuneforge.data.report import to_json as report_to_json
from tuneforge.data.validate import validate_any_task
from tuneforge.errors import InvalidArgument
from tuneforge.jobs.datasets import resolve_dataset
from tuneforge.storage import storage_for
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
        self.storage = storage_for(settings)

    def upload(self, project_id: str, filename: str, stream: BinaryIO, purpose: str) -> File:
        """Stream an upload to the storage (refusing it past the size limit), store it
        immutably with its sha256, and validate it on arrival."""
        file_id = repo.new_file_id()
        digest = hashlib.sha256()
        size = 0

        def chunks() -> Iterator[bytes]:
            nonlocal size
            while chunk := stream.read(UPLOAD_CHUNK):
                size += len(chunk)
                if size > self.settings.max_upload_bytes:
                    raise UploadTooLarge.over(self.settings.max_upload_bytes)
                digest.update(chunk)
                yield chunk

        uri = self.storage.write_upload(file_id, chunks())
        report = validate_any_task(self.storage.local_path(uri))
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
                    path=uri,
                    status="processed" if report.ok else "error",
                    format=report.format.value if report.format else None,
                    example_count=len(report.examples),
                    validation=report_to_json(report),
                )
        except BaseException:
            self.storage.delete_upload(uri)  # no row points at it: do not keep it
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
        # A job's result file (metrics.csv) lives in the job's folder: it is not ours to delete.
        self.storage.delete_upload(row.path)
        return row

    def local_path(self, row: File) -> Path:
        """A local copy of the file's content (its row holds a URI, or an old row's path)."""
        return self.storage.local_path(row.path)

    def dataset_path(self, project_id: str, reference: str, param: str) -> Path:
        """A local copy of the dataset a reference names (an uploaded file, an allowed path,
        or a fetched remote URI)."""
        with self.db.session() as s:
            return resolve_dataset(s, self.settings, project_id, reference, param)

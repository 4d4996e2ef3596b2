"""Uploaded datasets and media files: streamed to the storage under a size limit, immutable,
validated after they are stored (an image, PDF or audio file as a media part, to be named by its
id in examples and requests; anything else as a dataset).

An upload is stored and listed at once with status ``uploaded``; a background thread then
validates it, streaming through the file, and sets ``processed`` or ``error`` with its report,
as OpenAI's files do. The request waits a moment for that (``VALIDATION_WAIT_S``), so a small
file answers already validated and a large one answers at once. A server stopped mid-validation
validates the file again when it starts (``recover``), and removes what a killed upload left.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from tuneforge.config import Settings
from tuneforge.data.media import MIME_KINDS, Media, MediaError, check_media_bytes, media_limits
from tuneforge.data.media import sniffed_type as sniffed_media_type
from tuneforge.data.records import Problem, ValidationReport
from tuneforge.data.report import to_json as report_to_json
from tuneforge.data.validate import validate_any_task
from tuneforge.errors import InvalidArgument, NotFound
from tuneforge.jobs.datasets import resolve_dataset
from tuneforge.storage import local_file, scheme_of, storage_for
from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.models import File
from tuneforge.store.states import FileStatus

UPLOAD_CHUNK = 1 << 20
# How long an upload's request waits for its validation before answering ``uploaded``.
VALIDATION_WAIT_S = 2.0
# An upload nothing has written to for this long, and no row names, was left by a killed one.
ABANDONED_UPLOAD_S = 600.0

log = logging.getLogger("tuneforge.files")


class UploadTooLarge(InvalidArgument):
    """An upload over the configured limit (HTTP 413)."""

    @classmethod
    def over(cls, limit: int) -> UploadTooLarge:
        return cls(
            f"the file is larger than the upload limit of {limit} bytes "
            "(TUNEFORGE_MAX_UPLOAD_BYTES)",
            param="file",
        )


def media_type_of(path: Path) -> str | None:
    """The media type (image, PDF or audio) the file's first bytes say it is, or None for
    anything else. UTF-16 text starts with a byte order mark that MP3's frame sync matches."""
    with path.open("rb") as file:
        head = file.read(16)
    if head.startswith(b"\xff\xfe"):
        return None
    return sniffed_media_type(head)


class ValidationQueue:
    """Validates stored uploads one at a time on a daemon thread (one file's worth of memory
    at most, however many arrive)."""

    def __init__(self, validate: Callable[[str, str, str], None]) -> None:
        self._validate = validate
        self._queue: queue.Queue[tuple[tuple[str, str, str] | None, threading.Event]]
        self._queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, project_id: str, file_id: str, uri: str) -> threading.Event:
        """Queue a file; the event is set once its validation is recorded."""
        return self._put((project_id, file_id, uri))

    def flush(self, timeout_s: float) -> bool:
        """Wait until every file queued so far is validated; False if that took too long."""
        return self._put(None).wait(timeout_s)

    def _put(self, args: tuple[str, str, str] | None) -> threading.Event:
        done = threading.Event()
        self._queue.put((args, done))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="file-validation", daemon=True
                )
                self._thread.start()
        return done

    def _work(self) -> None:
        while True:
            args, done = self._queue.get()
            try:
                if args is not None:
                    self._validate(*args)
            except Exception:  # one file's failure must not stop the others' validation
                log.exception("validating %s failed", args)
            finally:
                done.set()


class FileService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.storage = storage_for(settings)
        self.validations = ValidationQueue(self._validate)

    def upload(
        self,
        project_id: str,
        filename: str,
        stream: BinaryIO,
        purpose: str,
        *,
        wait_s: float | None = None,
    ) -> File:
        """Stream an upload to the storage (refusing it past the size limit), store it
        immutably with its sha256, and queue its validation; wait up to ``wait_s`` (default
        VALIDATION_WAIT_S) for it, so the row returned is ``processed`` or ``error`` unless
        the file takes longer to validate than that."""
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
        try:
            with self.db.session() as s:
                repo.ensure_project(s, project_id)
                repo.create_file(
                    s,
                    project_id,
                    file_id=file_id,
                    filename=filename,
                    bytes=size,
                    sha256=digest.hexdigest(),
                    purpose=purpose,
                    path=uri,
                    status=FileStatus.UPLOADED,
                )
        except BaseException:
            self.storage.delete_upload(uri)  # no row points at it: do not keep it
            raise
        validated = self.validations.submit(project_id, file_id, uri)
        validated.wait(VALIDATION_WAIT_S if wait_s is None else wait_s)
        return self.get(project_id, file_id)

    def _validate(self, project_id: str, file_id: str, uri: str) -> None:
        """Validate a stored upload and record the verdict: an image, PDF or audio file (by its
        bytes' signature) as a media part, anything else as a dataset for the task its format
        implies."""
        media_type = None
        try:
            path = self.storage.local_path(uri)
            media_type = media_type_of(path)
            if media_type is not None:
                report = self._check_media(path, media_type)
            else:
                report = validate_any_task(path, keep_examples=False)
        except Exception as err:  # unreadable: the file is in error, with the reason
            log.exception("file %s could not be read", file_id)
            report = ValidationReport(format=None)
            report.add(Problem(0, "", f"the file could not be read: {type(err).__name__}: {err}"))
        validation = report_to_json(report)
        if media_type is not None:
            validation["format"] = media_type
        try:
            with self.db.session() as s:
                repo.update_file_validation(
                    s,
                    project_id,
                    file_id,
                    status=FileStatus.PROCESSED if report.ok else FileStatus.ERROR,
                    format=media_type or (report.format.value if report.format else None),
                    example_count=None if media_type else report.example_count,
                    validation=validation,
                )
        except NotFound:
            pass  # deleted while it was being validated

    def _check_media(self, path: Path, media_type: str) -> ValidationReport:
        """A media file checked as a media part naming it would be: its size, that it decodes,
        and the page and length limits. Its one problem, if any, is the check's message."""
        report = ValidationReport(format=None)
        limits = media_limits(self.settings)
        try:
            size = path.stat().st_size
            if size > limits.part_bytes:  # refused before reading it into memory
                raise MediaError(
                    f"the file holds {size:,} bytes; a media file may hold at most"
                    f" {limits.part_bytes:,} (TUNEFORGE_MAX_MEDIA_BYTES)"
                )
            check_media_bytes(Media(MIME_KINDS[media_type], media_type), path.read_bytes(), limits)
        except MediaError as err:
            report.add(Problem(0, "", str(err)))
        return report

    def recover(self) -> None:
        """At start-up: validate the files a stopped server left ``uploaded``, and remove the
        uploads no row names that nothing has written to for ABANDONED_UPLOAD_S (a killed
        upload's partial file, or its complete one whose row was never written)."""
        # A row written before the storage seam names its local file by plain path.
        idle = {
            uri: str(local_file(uri)) if scheme_of(uri) == "file" else uri
            for uri in self.storage.idle_uploads(ABANDONED_UPLOAD_S)
        }
        with self.db.session() as s:
            waiting = repo.files_awaiting_validation(s)
            named = repo.stored_file_uris(s, [*idle, *idle.values()])
        for uri, path in idle.items():
            if uri not in named and path not in named:
                log.warning("removing %s, left by an upload that did not finish", path)
                self.storage.delete_upload(uri)
        for project_id, file_id, uri in waiting:
            self.validations.submit(project_id, file_id, uri)

    def get(self, project_id: str, file_id: str) -> File:
        with self.db.session() as s:
            return repo.get_file(s, project_id, file_id)

    def list(self, project_id: str, *, purpose=None, limit=20, after=None) -> repo.Page:
        with self.db.reading() as c:
            return repo.list_files(c, project_id, purpose=purpose, limit=limit, after=after)

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

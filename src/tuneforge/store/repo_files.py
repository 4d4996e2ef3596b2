"""Uploaded dataset files (the rows; the bytes live under ``files/`` in the data dir)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from tuneforge.store.models import File
from tuneforge.store.records import FileRecord, RecordShape
from tuneforge.store.repo_common import (
    DEFAULT_PAGE_SIZE,
    Page,
    get_scoped,
    paginate,
    require_project,
)
from tuneforge.store.states import FileStatus
from tuneforge.store.types import new_id

# Values bound in one IN (...) clause at most (SQLite allows 32,766; PostgreSQL 65,535).
IN_CLAUSE_BATCH = 1000
# A page of files holds at most this many, whatever limit is asked: a file's row carries its
# validation report (up to 1,000 problems), so a list response stays bounded.
MAX_FILES_PER_PAGE = 100


def new_file_id() -> str:
    """An id for a file about to be written, so its path can be named before the row exists."""
    return new_id("file", 24)


def create_file(
    session: Session,
    project_id: str,
    *,
    filename: str,
    bytes: int,
    sha256: str,
    purpose: str,
    path: str,
    status: str = FileStatus.UPLOADED,
    format: str | None = None,
    example_count: int | None = None,
    validation: dict[str, Any] | None = None,
    file_id: str | None = None,
) -> File:
    require_project(session, project_id)
    row = File(
        id=file_id or new_file_id(),
        project_id=project_id,
        filename=filename,
        bytes=bytes,
        sha256=sha256,
        purpose=purpose,
        path=path,
        status=status,
        format=format,
        example_count=example_count,
        validation=validation,
    )
    session.add(row)
    session.flush()
    return row


def get_file(session: Session, project_id: str, file_id: str) -> File:
    return get_scoped(session, File, project_id, file_id, "file")


def existing_file_ids(
    session: Session | Connection, project_id: str, file_ids: Iterable[str]
) -> set[str]:
    """Which of these ids name a file of this project, in one query."""
    ids = list(file_ids)
    if not ids:
        return set()
    return set(
        session.scalars(select(File.id).where(File.project_id == project_id, File.id.in_(ids)))
    )


FILES = File.__table__.c
FILE_RECORD = RecordShape(File, FileRecord)
_PROJECT_FILES = select(*FILE_RECORD.columns).where(FILES.project_id == bindparam("project_id"))
_PROJECT_FILES_OF_PURPOSE = _PROJECT_FILES.where(FILES.purpose == bindparam("purpose"))


def list_files(
    session: Session | Connection,
    project_id: str,
    *,
    purpose: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    after: str | None = None,
) -> Page[FileRecord]:
    """The project's files, newest first, as read-only records."""
    query = _PROJECT_FILES if purpose is None else _PROJECT_FILES_OF_PURPOSE
    return paginate(
        session,
        query,
        FILES,
        limit=limit,
        after=after,
        params={"project_id": project_id, "purpose": purpose},
        most=MAX_FILES_PER_PAGE,
        load=FILE_RECORD.load,
    )


def update_file_validation(
    session: Session,
    project_id: str,
    file_id: str,
    *,
    status: str,
    format: str | None,
    example_count: int | None,
    validation: dict[str, Any] | None,
) -> File:
    row = get_file(session, project_id, file_id)
    row.status = status
    row.format = format
    row.example_count = example_count
    row.validation = validation
    session.flush()
    return row


def files_awaiting_validation(session: Session) -> list[tuple[str, str, str]]:
    """(project id, file id, URI) of every file stored but not yet validated, every project's:
    a server stopped while validating them."""
    rows = session.execute(
        select(File.project_id, File.id, File.path).where(File.status == FileStatus.UPLOADED)
    )
    return [tuple(row) for row in rows]


def stored_file_uris(session: Session, uris: Iterable[str]) -> set[str]:
    """Which of ``uris`` a file row (of any project) names."""
    uris = list(uris)
    named: set[str] = set()
    for start in range(0, len(uris), IN_CLAUSE_BATCH):
        batch = uris[start : start + IN_CLAUSE_BATCH]
        named.update(session.scalars(select(File.path).where(File.path.in_(batch))))
    return named


def delete_file(session: Session, project_id: str, file_id: str) -> File:
    """Delete the row and return it; removing ``row.path`` from disk is the caller's job."""
    row = get_file(session, project_id, file_id)
    session.delete(row)
    session.flush()
    return row

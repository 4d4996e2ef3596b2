"""The files API's shapes: OpenAI's FileObject, with tuneforge's validation fields."""

from __future__ import annotations

from typing import Any, Literal

from tuneforge.api.openai_schema import OpenAIObject
from tuneforge.data.media import MIME_KINDS
from tuneforge.data.records import Problem
from tuneforge.data.validate import first_errors
from tuneforge.store.models import File

SHOWN_PROBLEMS = 3
# A file in a list carries its report's counts and first problems; GET /v1/files/{id} has the
# whole report (up to 1,000 problems, so a page of 100 full reports could reach 15 MB).
LISTED_PROBLEMS = 5


class FileObject(OpenAIObject):
    """OpenAI's FileObject (``expires_at`` and ``status_details`` null when they do not
    apply, as OpenAI writes them), then what tuneforge adds: the sha256, the detected format (a
    media file's MIME type), the example count and the validation report."""

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str
    status_details: str | None
    expires_at: int | None = None
    sha256: str
    format: str | None
    example_count: int | None
    validation: dict[str, Any] | None

    @classmethod
    def of(cls, row: File, *, full_report: bool = True) -> FileObject:
        """``full_report=False`` (a list): the report's counts and its first LISTED_PROBLEMS
        problems, ``omitted_problems`` counting every one not shown."""
        return cls(
            id=row.id,
            bytes=row.bytes,
            created_at=int(row.created_at.timestamp()),
            filename=row.filename,
            purpose=row.purpose,
            status=row.status,
            status_details=_status_details(row),
            sha256=row.sha256,
            format=row.format,
            example_count=row.example_count,
            validation=row.validation if full_report else report_summary(row.validation),
        )


def report_summary(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The report with only its first problems; ``omitted_problems`` counts the others."""
    if report is None:
        return None
    problems = report.get("problems", [])[:LISTED_PROBLEMS]
    counted = report.get("error_count", 0) + report.get("warning_count", 0)
    return {
        **report,
        "problems": problems,
        "omitted_problems": max(counted - len(problems), 0),
    }


def _status_details(row: File) -> str | None:
    """For a file that failed validation: its first problems, by line (a media file's
    problem as it is)."""
    report = row.validation or {}
    if row.status != "error":
        return None
    if row.format in MIME_KINDS:  # a media file: not lines, the check's own words
        return "; ".join(p["message"] for p in report.get("problems", [])) or (
            "the file is not a valid media file"
        )
    problems = [Problem(**problem) for problem in report.get("problems", [])]
    errors = sum(p.severity == "error" for p in problems)
    return first_errors(problems, report.get("error_count", errors), SHOWN_PROBLEMS) or (
        "the file is not a valid dataset"
    )


class FileList(OpenAIObject):
    """A page, newest first; ``last_id`` is the ``after`` of the next page."""

    object: Literal["list"] = "list"
    data: list[FileObject]
    has_more: bool
    first_id: str | None
    last_id: str | None

    @classmethod
    def of(cls, files: list[FileObject], has_more: bool) -> FileList:
        first, last = (files[0].id, files[-1].id) if files else (None, None)
        return cls(data=files, has_more=has_more, first_id=first, last_id=last)


class FileDeleted(OpenAIObject):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True

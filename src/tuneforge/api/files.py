"""Dataset files, in OpenAI's shape (the google-genai SDK has no files API in Vertex mode, so
both surfaces share this one): upload, list, get, download, delete.

An upload streams to disk (the multipart parser spools it, the service copies it into place)
and is refused with 413 past the size limit; each file shows its detected format, example
count and validation report besides OpenAI's fields.
"""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from tuneforge.api.deps import current_project, get_service
from tuneforge.api.errors import ApiError
from tuneforge.api.files_schema import FileDeleted, FileList, FileObject
from tuneforge.api.threaded import json_built_in_thread
from tuneforge.service import Service, UploadTooLarge
from tuneforge.store.repo_common import MAX_PAGE_SIZE

# OpenAI's purposes; tuning reads files of any of them.
PURPOSES = ("fine-tune", "batch", "assistants", "user_data", "evals", "vision")
# Room for the multipart boundaries, part headers and the purpose field around the file.
MULTIPART_OVERHEAD = 1 << 20
MAX_FILENAME = 512

router = APIRouter(prefix="/v1/files", tags=["files"])
# The upload route reads its multipart body itself (after authentication); its schema for docs.
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "purpose"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {"type": "string", "enum": list(PURPOSES)},
                    },
                }
            }
        },
    }
}


@router.post("", openapi_extra=UPLOAD_BODY)
async def upload_file(
    request: Request,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> FileObject:
    """Multipart fields ``file`` and ``purpose``, as ``openai.files.create`` sends them."""
    limit = service.settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise UploadTooLarge.over(limit)  # refused before reading any of it
    async with request.form(max_files=1, max_fields=10) as form:
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "file: send the dataset as the multipart file field 'file'",
                           code="invalid_request", param="file")  # fmt: skip
        if purpose not in PURPOSES:
            raise ApiError(
                400,
                f"purpose must be one of {', '.join(PURPOSES)} ('fine-tune' for tuning data), "
                f"got {purpose!r}",
                code="invalid_request",
                param="purpose",
            )
        row = await run_in_threadpool(
            service.files.upload, project_id, _filename(upload.filename), upload.file, purpose
        )
    return FileObject.of(row)


def _filename(name: str | None) -> str:
    """The file's own name, without any folders a client sent with it."""
    base = PureWindowsPath(PurePosixPath(name or "").name).name
    return (base or "upload.jsonl")[-MAX_FILENAME:]


@router.get("", response_model=FileList)
async def list_files(
    after: str | None = None,
    limit: int = Query(20, ge=1, le=MAX_PAGE_SIZE),
    purpose: str | None = None,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> Response:
    """Newest first; pass the last id seen as ``after`` for the next page. Each file carries
    a summary of its validation report (GET /v1/files/{id} has all of it)."""

    def page() -> FileList:
        files = service.files.list(project_id, purpose=purpose, limit=limit, after=after)
        listed = [FileObject.of(row, full_report=False) for row in files.items]
        return FileList.of(listed, files.has_more)

    return await json_built_in_thread(page)


@router.get("/{file_id}")
def get_file(
    file_id: str,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> FileObject:
    return FileObject.of(service.files.get(project_id, file_id))


@router.get("/{file_id}/content")
def get_file_content(
    file_id: str,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> FileResponse:
    row = service.files.get(project_id, file_id)
    return FileResponse(
        service.files.local_path(row), media_type="application/octet-stream", filename=row.filename
    )


@router.delete("/{file_id}")
def delete_file(
    file_id: str,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> FileDeleted:
    return FileDeleted(id=service.files.delete(project_id, file_id).id)

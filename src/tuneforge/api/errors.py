"""Errors in each surface's own shape.

Vertex routes (``/v1/projects/...``, ``/v1beta1/...``) answer ``{"error": {"code", "message",
"status"}}``; every other route (OpenAI's shape, which the files API shares) answers
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tuneforge.errors import Conflict, InvalidArgument, NotFound, TuneforgeError

VERTEX_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 409: "FAILED_PRECONDITION",
                 413: "OUT_OF_RANGE", 422: "INVALID_ARGUMENT", 500: "INTERNAL",
                 501: "UNIMPLEMENTED"}  # fmt: skip
OPENAI_TYPE = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               409: "invalid_request_error", 413: "invalid_request_error",
               422: "invalid_request_error", 500: "server_error"}  # fmt: skip


class ApiError(Exception):
    """An error a route raises with its HTTP status; ``code`` / ``param`` for OpenAI's shape."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param


def is_vertex_path(path: str) -> bool:
    return path.startswith("/v1beta1/") or path.startswith("/v1/projects/")


def error_response(request: Request, status: int, message: str, code=None, param=None):
    if is_vertex_path(request.url.path):
        body = {"code": status, "message": message, "status": VERTEX_STATUS.get(status, "UNKNOWN")}
    else:
        body = {"message": message, "type": OPENAI_TYPE.get(status, "invalid_request_error"),
                "param": param, "code": code}  # fmt: skip
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def status_of(err: TuneforgeError) -> int:
    from tuneforge.service import UploadTooLarge

    if isinstance(err, UploadTooLarge):
        return 413
    if isinstance(err, NotFound):
        return 404
    if isinstance(err, Conflict):
        return 409
    if isinstance(err, InvalidArgument):
        return 400
    return 400


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError):
        return error_response(request, err.status, str(err), err.code, err.param)

    @app.exception_handler(TuneforgeError)
    async def _domain_error(request: Request, err: TuneforgeError):
        status = status_of(err)
        code = {404: "not_found", 409: "conflict", 413: "file_too_large"}.get(status)
        return error_response(request, status, str(err), code, getattr(err, "param", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError):
        first = err.errors()[0]
        location = ".".join(str(p) for p in first["loc"] if p not in ("body", "query"))
        message = f"{location}: {first['msg']}" if location else first["msg"]
        return error_response(request, 400, message, "invalid_request", location or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException):
        return error_response(request, err.status_code, str(err.detail))

"""Errors in each surface's own shape.

Google-style routes (Vertex's ``/v1/projects/...`` and ``/v1beta1/...``, the Gemini API's
``/v1/tunedModels...`` and ``/v1beta/...``) answer ``{"error": {"code", "message", "status"}}``;
every other route (OpenAI's shape, which the files API shares) answers
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tuneforge.api import google
from tuneforge.errors import Conflict, InvalidArgument, NotFound, TuneforgeError

log = logging.getLogger(__name__)

OPENAI_TYPE = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               409: "invalid_request_error", 413: "invalid_request_error",
               422: "invalid_request_error", 500: "server_error"}  # fmt: skip


class ApiError(Exception):
    """An error a route raises with its HTTP status; ``code`` / ``param`` for OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param=None,
        google_status: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param
        self.google_status = google_status  # the Google shape's status when not the usual one


GOOGLE_PREFIXES = ("/v1beta1/", "/v1/projects/", "/v1beta/", "/v1/tunedModels")


def is_google_path(path: str) -> bool:
    return path.startswith(GOOGLE_PREFIXES)


def error_response(
    request: Request, status: int, message: str, code=None, param=None, vertex_status=None
):
    if is_google_path(request.url.path):
        body = google.error_body(status, message, vertex_status)
    else:
        kind = OPENAI_TYPE.get(status, "invalid_request_error")
        body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def renamed(err: InvalidArgument, names: dict[str, str]) -> InvalidArgument:
    """The service's error in a surface's names: ``names`` maps tuneforge's parameter names to
    the request's (``epochs`` to OpenAI's ``hyperparameters.n_epochs`` or Vertex's
    ``supervisedTuningSpec.hyperParameters.epochCount``), in the message and in ``param``.

    A name is replaced only as a whole name, not inside another (``learning_rate`` within
    ``learning_rate_multiplier``) nor after a dot (a field of something else). The service
    qualifies a hyperparameter as ``hyperparameters.NAME``; the qualified form is replaced
    whole, so the surface's name does not gain a second prefix. Text in quotes (a file's path,
    a value from the user's data) is left as it is."""
    if not names:
        return InvalidArgument(str(err), err.param)
    alternatives = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    pattern = re.compile(
        rf"((?<!\w)'[^'\n]*'(?!\w)|\"[^\"\n]*\")"
        rf"|(?<![\w.])(?:hyperparameters\.)?({alternatives})(?!\w)"
    )
    message = pattern.sub(lambda match: match[1] or names[match[2]], str(err))
    param = names.get(err.param, err.param) if err.param else None
    return InvalidArgument(message, param)


def status_of(err: TuneforgeError) -> tuple[int, str | None, str | None]:
    """HTTP status, OpenAI error code and Vertex status of one of our errors.

    A resource in the wrong state (cancelling a finished job) is 400 on both surfaces: OpenAI
    answers 400, and Google's FAILED_PRECONDITION is HTTP 400 (409 means ABORTED there)."""
    from tuneforge.service import UploadTooLarge

    if isinstance(err, UploadTooLarge):
        return 413, "file_too_large", None
    if isinstance(err, NotFound):
        return 404, "not_found", None
    if isinstance(err, Conflict):
        return 400, "invalid_state", "FAILED_PRECONDITION"
    return 400, None, None


def unknown_parameter_message(path: str, location: str) -> str:
    """What each service answers to a parameter it does not know, in its own words."""
    if is_google_path(path):
        return unknown_google_field(location)
    return f"Unrecognized request argument supplied: {location}"


def unknown_google_field(location: str) -> str:
    parent, _, name = location.rpartition(".")
    where = f" at '{parent}'" if parent else ""
    return f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.'


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError):
        return error_response(request, err.status, str(err), err.code, err.param, err.google_status)

    @app.exception_handler(TuneforgeError)
    async def _domain_error(request: Request, err: TuneforgeError):
        status, code, vertex_status = status_of(err)
        param = getattr(err, "param", None)
        return error_response(request, status, str(err), code, param, vertex_status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError):
        first = err.errors()[0]
        location = ".".join(str(p) for p in first["loc"] if p not in ("body", "query"))
        message = f"{location}: {first['msg']}" if location else first["msg"]
        if first["type"] == "extra_forbidden":
            message = unknown_parameter_message(request.url.path, location)
        return error_response(request, 400, message, "invalid_request", location or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException):
        return error_response(request, err.status_code, str(err.detail))

    @app.exception_handler(Exception)
    async def _unexpected_error(request: Request, err: Exception):
        # The details may hold paths or data: they go to the log, not to the client.
        log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=err)
        return error_response(request, 500, "internal error", "internal_error")

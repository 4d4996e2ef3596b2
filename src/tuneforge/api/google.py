"""What every Google-style surface shares: the Vertex API today, the Gemini API's
``tunedModels`` next. Resource names, camelCase JSON, RFC 3339 times and google.rpc.Status
errors follow Google's API conventions (AIP-122, proto3 JSON), so they live here once rather
than being rebuilt by each surface.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# --- resource names -------------------------------------------------------------------------


class ResourceName:
    """A resource-name pattern such as ``projects/{project}/locations/{location}``.

    ``{id}`` stands for one segment; ``{id=**}`` for the rest of the name, slashes included
    (a model id such as ``org/model`` inside ``publishers/{p}/models/{m=**}``).
    """

    _VARIABLE = re.compile(r"\{(\w+)(=\*\*)?\}")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        regex, end = "", 0
        for match in self._VARIABLE.finditer(pattern):
            regex += re.escape(pattern[end : match.start()])
            regex += f"(?P<{match[1]}>{'.+' if match[2] else '[^/]+'})"
            end = match.end()
        self._regex = re.compile(regex + re.escape(pattern[end:]))

    def format(self, **ids: str) -> str:
        return self._VARIABLE.sub(lambda match: ids[match[1]], self.pattern)

    def parse(self, name: str) -> dict[str, str] | None:
        """The ids in ``name``, or None when it is not a name of this pattern."""
        match = self._regex.fullmatch(name)
        return match.groupdict() if match else None


def child_name(parent: str, collection: str, resource_id: str) -> str:
    """``{parent}/{collection}/{resource_id}``: a resource's name under its parent's."""
    return f"{parent}/{collection}/{resource_id}"


# --- JSON -----------------------------------------------------------------------------------


class GoogleRequest(BaseModel):
    """A request body: camelCase as the SDKs send it, snake_case accepted too (the docs' curl
    samples and some SDK fields use it); unknown fields are ignored."""

    model_config = ConfigDict(
        extra="ignore", alias_generator=to_camel, validate_by_name=True, validate_by_alias=True
    )


class GoogleResponse(BaseModel):
    """A response body: camelCase on the wire. Routes serve it with
    ``response_model_exclude_none`` (an unset field is left out, as proto3 JSON does)."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, serialize_by_alias=True
    )


def without_nones(body: dict[str, Any]) -> dict[str, Any]:
    """A hand-built body without its unset (None) fields, as proto3 JSON writes it."""
    return {key: value for key, value in body.items() if value is not None}


def timestamp(value: datetime | None) -> str | None:
    """RFC 3339 in UTC, as Google's APIs write times."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# --- google.rpc.Status ----------------------------------------------------------------------


class Code(IntEnum):
    """google.rpc.Code: what a Status's ``code`` holds inside a resource (a job's or an
    operation's error); the HTTP error body holds the HTTP status instead."""

    INVALID_ARGUMENT = 3
    NOT_FOUND = 5
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    INTERNAL = 13


# The ``status`` of an HTTP error body for each HTTP status tuneforge answers with.
STATUS_OF_HTTP = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                  404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 409: "FAILED_PRECONDITION",
                  413: "OUT_OF_RANGE", 422: "INVALID_ARGUMENT", 500: "INTERNAL",
                  501: "UNIMPLEMENTED"}  # fmt: skip
ERROR_DOMAIN = "tuneforge"


class ErrorInfo(GoogleResponse):
    """google.rpc.ErrorInfo, the detail clients pick out of ``details`` by its ``@type``."""

    type: str = Field(default="type.googleapis.com/google.rpc.ErrorInfo", alias="@type")
    reason: str
    domain: str = ERROR_DOMAIN
    metadata: dict[str, str] | None = None


class Status(GoogleResponse):
    """google.rpc.Status; ``status`` (the code's name) only in HTTP error bodies."""

    code: int
    message: str
    status: str | None = None
    details: list[ErrorInfo] | None = None


class ErrorBody(GoogleResponse):
    """What a Google API answers an HTTP error with."""

    error: Status


def error_body(http_status: int, message: str, status: str | None = None) -> dict[str, Any]:
    """``{"error": {"code", "message", "status"}}`` for an HTTP error; ``status`` defaults to
    the HTTP status's usual name."""
    status = status or STATUS_OF_HTTP.get(http_status, "UNKNOWN")
    body = ErrorBody(error=Status(code=http_status, message=message, status=status))
    return body.model_dump(exclude_none=True)


def job_error_status(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """A failed job's stored error (``{"code", "message", "param"}``) as google.rpc.Status:
    invalid input is INVALID_ARGUMENT, running out of attempts ABORTED, out of memory (killed,
    or refused before training) RESOURCE_EXHAUSTED, anything else INTERNAL; the job's own code
    is the ErrorInfo's reason."""
    if not error:
        return None
    code = str(error.get("code") or "unknown_error")
    if code.startswith("invalid"):
        rpc_code = Code.INVALID_ARGUMENT
    elif code == "too_many_attempts":
        rpc_code = Code.ABORTED
    elif code in ("out_of_memory", "insufficient_memory"):
        rpc_code = Code.RESOURCE_EXHAUSTED
    else:
        rpc_code = Code.INTERNAL
    param = error.get("param")
    info = ErrorInfo(reason=code.upper(), metadata={"param": str(param)} if param else None)
    status = Status(code=int(rpc_code), message=error.get("message") or code, details=[info])
    return status.model_dump(exclude_none=True)

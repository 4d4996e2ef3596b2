"""What routes receive: the shared service and the caller's project (from its API key)."""

from __future__ import annotations

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from tuneforge.api.errors import ApiError
from tuneforge.service import Service


async def get_service(request: Request) -> Service:
    """Async: it only reads an attribute, so it costs no trip through the threadpool."""
    return request.app.state.service


def api_key_of(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-goog-api-key") or None


async def current_project(request: Request, service: Service = Depends(get_service)) -> str:
    """The project of the request's API key; 401 without a valid, unrevoked key. Async, so a
    key found valid moments ago costs no trip through the threadpool; the database is asked
    in a worker thread."""
    key = api_key_of(request)
    if key is None:
        raise ApiError(401, "missing API key: send 'Authorization: Bearer KEY'",
                       code="missing_api_key")  # fmt: skip
    project_id = service.keys.recently_valid(key)
    if project_id is None:
        project_id = await run_in_threadpool(service.keys.authenticate, key)
    if project_id is None:
        raise ApiError(401, "invalid or revoked API key", code="invalid_api_key")
    return project_id

"""What routes receive: the shared service and the caller's project (from its API key)."""

from __future__ import annotations

from fastapi import Depends, Request

from tuneforge.api.errors import ApiError
from tuneforge.service import Service


def get_service(request: Request) -> Service:
    return request.app.state.service


def api_key_of(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-goog-api-key") or None


def current_project(request: Request, service: Service = Depends(get_service)) -> str:
    """The project of the request's API key; 401 without a valid, unrevoked key."""
    key = api_key_of(request)
    if key is None:
        raise ApiError(401, "missing API key: send 'Authorization: Bearer KEY'",
                       code="missing_api_key")  # fmt: skip
    project_id = service.keys.authenticate(key)
    if project_id is None:
        raise ApiError(401, "invalid or revoked API key", code="invalid_api_key")
    return project_id

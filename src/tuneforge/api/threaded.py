"""Read routes answered in one trip through the threadpool.

FastAPI runs a sync route in a worker thread and then validates and serializes what it returned
in another, about 0.35 ms of CPU per trip. A read route is ``async`` instead: it builds its
pydantic answer and that answer's JSON in one worker-thread call, where the database is asked,
and returns the bytes as they are. The answer was validated when it was built, so FastAPI's
second validation added nothing; the route keeps ``response_model`` for its OpenAPI schema.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool


async def json_built_in_thread(
    build: Callable[[], BaseModel], *, exclude_none: bool = False
) -> Response:
    """``build()``'s model as JSON, as FastAPI would write it for the route's response model
    (by alias; without unset fields with ``exclude_none``, as Google's routes answer)."""

    def render() -> bytes:
        return build().model_dump_json(by_alias=True, exclude_none=exclude_none).encode()

    return Response(await run_in_threadpool(render), media_type="application/json")

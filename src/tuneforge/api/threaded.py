"""Read routes answered in one trip through the threadpool.

FastAPI runs a sync route in a worker thread and then validates and serializes what it returned
in another, about 0.35 ms of CPU per trip. A read route is ``async`` instead: it builds its
pydantic answer and that answer's JSON in one worker-thread call, where the database is asked,
and returns the bytes as they are. The answer was validated when it was built, so FastAPI's
second validation added nothing; the route keeps ``response_model`` for its OpenAPI schema.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from weakref import WeakKeyDictionary

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import Response
from pydantic import BaseModel

# Worker threads the read routes use at once. More threads than cores only hand the GIL back
# and forth: at 75 concurrent list requests, 40 threads (anyio's default) cost 7.9 ms of CPU a
# request and 4 cost 4.3 (in process, SQLite), serving 60% more requests a second.
READ_THREADS = 4
# One limiter per event loop: a limiter belongs to the loop it was first used in (an app under
# test runs in a loop of its own client's).
_limiters: WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = WeakKeyDictionary()


def _read_limiter() -> CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = CapacityLimiter(READ_THREADS)
    return limiter


async def json_built_in_thread(
    build: Callable[[], BaseModel], *, exclude_none: bool = False
) -> Response:
    """``build()``'s model as JSON, as FastAPI would write it for the route's response model
    (by alias; without unset fields with ``exclude_none``, as Google's routes answer)."""

    def render() -> bytes:
        return build().model_dump_json(by_alias=True, exclude_none=exclude_none).encode()

    body = await anyio.to_thread.run_sync(render, limiter=_read_limiter())
    return Response(body, media_type="application/json")

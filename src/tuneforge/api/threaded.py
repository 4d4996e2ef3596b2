"""Read routes answered in one trip to a worker thread.

FastAPI runs a sync route in a worker thread and then validates and serializes what it returned
in another, about 0.35 ms of CPU per trip. A read route is ``async`` instead: it builds its
pydantic answer and that answer's JSON in one worker-thread call, where the database is asked,
and returns the bytes as they are. The answer was validated when it was built, so FastAPI's
second validation added nothing; the route keeps ``response_model`` for its OpenAPI schema.

The trip goes through a standard-library ThreadPoolExecutor (``loop.run_in_executor``) rather
than anyio's ``to_thread.run_sync``: with 75 calls at once, a call cost about 120 µs of CPU
through anyio (its backend lookup, capacity limiter, a Python-level Queue and Condition) and
about 50 through the executor (benchmarks/README.md, api_load.py).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from fastapi import Response
from pydantic import BaseModel

# Worker threads the read routes use at once. More threads than cores only hand the GIL back
# and forth: at 75 concurrent list requests, 40 threads (anyio's default) cost 7.9 ms of CPU a
# request and 4 cost 4.3 (in process, SQLite), serving 60% more requests a second.
READ_THREADS = 4
# Shared by every event loop of the process (an app under test runs in its client's loop):
# each call's result goes back to the loop that awaits it.
_readers = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="tuneforge-read")


async def json_built_in_thread(
    build: Callable[[], BaseModel], *, exclude_none: bool = False
) -> Response:
    """``build()``'s model as JSON, as FastAPI would write it for the route's response model
    (by alias; without unset fields with ``exclude_none``, as Google's routes answer)."""

    def render() -> bytes:
        return build().model_dump_json(by_alias=True, exclude_none=exclude_none).encode()

    context = contextvars.copy_context()  # as anyio's trips do: the request's context vars
    body = await asyncio.get_running_loop().run_in_executor(_readers, context.run, render)
    return Response(body, media_type="application/json")

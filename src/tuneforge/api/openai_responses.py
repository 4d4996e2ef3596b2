"""OpenAI's Responses API, ``POST /v1/responses``, as ``client.responses.create`` calls it:
text in (a string or messages, ``instructions``), one message of text out, or with ``stream``
its server-sent events.

The same generation as chat completions (:func:`tuneforge.api.openai.chat_completions`); the
shapes are in :mod:`tuneforge.api.openai_responses_schema`.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from tuneforge.api.openai import Project, Services, model_errors
from tuneforge.api.openai_responses_schema import (
    OutputMessage,
    OutputText,
    Response,
    ResponseError,
    ResponsesRequest,
    finished_response,
    message_status,
    new_message_id,
    started_response,
)
from tuneforge.inference.types import TextStream

log = logging.getLogger("tuneforge.api.openai_responses")

router = APIRouter(prefix="/v1", tags=["openai"])


@router.post("/responses", response_model=Response)
def create_response(
    body: ResponsesRequest, project: Project, service: Services
) -> Response | StreamingResponse:
    """A response, or with ``stream`` a StreamingResponse of its events."""
    body.refuse_unsupported()
    prompt = body.conversation_prompt()
    with model_errors(body.model, body.param_names()):
        params = body.params()
        started = started_response(body, params)
        if body.stream:
            deltas = service.generation.stream(project, body.model, prompt, params)
            return StreamingResponse(
                response_events(started, deltas), media_type="text/event-stream"
            )
        result = service.generation.generate(project, body.model, prompt, params)
    [completion] = result.completions
    message = OutputMessage(
        id=new_message_id(),
        status=message_status(completion.finish_reason),
        content=[OutputText.of(completion)],
    )
    return finished_response(
        started, message, completion.finish_reason, result.prompt_tokens, completion.output_tokens
    )


def response_events(started: Response, deltas: TextStream) -> Iterator[str]:
    """The events OpenAI streams for a response of one text message, numbered in order:
    created, in_progress, the message and its text part added, the text deltas, the text, part
    and message done, then ``response.completed`` (``response.incomplete`` when it ran out of
    tokens, ``response.failed`` if the model failed)."""
    numbers = itertools.count()

    def event(kind: str, **fields: Any) -> str:
        data = {"type": kind, "sequence_number": next(numbers), **fields}
        return f"event: {kind}\ndata: {json.dumps(data)}\n\n"

    def dump(value: BaseModel) -> dict[str, Any]:
        return value.model_dump(mode="json")

    message = OutputMessage(id=new_message_id(), status="in_progress", content=[])
    where = {"item_id": message.id, "output_index": 0, "content_index": 0}
    yield event("response.created", response=dump(started))
    yield event("response.in_progress", response=dump(started))
    yield event("response.output_item.added", output_index=0, item=dump(message))
    yield event("response.content_part.added", **where, part=dump(OutputText(text="")))
    text: list[str] = []
    try:
        for delta in deltas:
            text.append(delta)
            yield event("response.output_text.delta", **where, delta=delta, logprobs=[])
    except Exception:  # the response has begun: the failure goes into the stream
        log.exception("response stream failed")
        error = ResponseError(message="the model failed while writing the response")
        yield event("response.failed", response=dump(started.model_copy(
            update={"status": "failed", "error": error})))  # fmt: skip
        return
    finally:
        deltas.close()  # a client that went away stops the generation
    part = OutputText(text="".join(text))
    yield event("response.output_text.done", **where, text=part.text, logprobs=[])
    yield event("response.content_part.done", **where, part=dump(part))
    finish = deltas.finish_reason or "stop"
    message = message.model_copy(update={"status": message_status(finish), "content": [part]})
    yield event("response.output_item.done", output_index=0, item=dump(message))
    finished = finished_response(
        started, message, finish, deltas.prompt_tokens, deltas.output_tokens
    )
    yield event(f"response.{finished.status}", response=dump(finished))

"""generateContent and streamGenerateContent as every Google-style surface serves them (Vertex's
endpoints and models, the Gemini API's tunedModels): the request parsed once, answered by
``service.generation``, the stream written as Google writes it.

A stream is a JSON array of GenerateContentResponse chunks, parsed incrementally by the legacy
``google-generativeai`` SDK, or with ``alt=sse`` (``google-genai``) server-sent events
``data: {chunk}``. Each chunk holds a text delta; the last one also the finish reason and usage.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from fastapi.responses import StreamingResponse

from tuneforge.api.errors import renamed
from tuneforge.api.generate_content_schema import (
    GENERATION_NAMES,
    GenerateContentRequest,
    GenerateContentResponse,
    ResponseIdentity,
)
from tuneforge.api.google import error_body
from tuneforge.errors import InvalidArgument
from tuneforge.inference.token_count import TurnTokens
from tuneforge.inference.types import GenerationParams, TextStream
from tuneforge.service import Service

log = logging.getLogger("tuneforge.api.generate_content")


def _params(body: GenerateContentRequest) -> GenerationParams:
    body.refuse_unsupported()
    tool_params = body.tool_params()
    try:
        return replace(body.generation_config.to_params(), **tool_params)
    except InvalidArgument as err:
        raise renamed(err, GENERATION_NAMES) from None


def generate(
    service: Service, project_id: str, model: str, body: GenerateContentRequest, model_version: str
) -> GenerateContentResponse:
    """The answer of ``model`` (a name the service resolves) to the request."""
    conversation = body.conversation()
    result = service.generation.generate(project_id, model, conversation, _params(body))
    return GenerateContentResponse.of(result, model_version)


def prompt_tokens(
    service: Service, project_id: str, model: str, body: GenerateContentRequest
) -> list[TurnTokens]:
    """The request's prompt tokens per content, for countTokens and computeTokens: refused as
    generateContent would refuse the same request."""
    body.refuse_unsupported()
    return service.generation.prompt_tokens(project_id, model, body.conversation(answerable=False))


def stream(
    service: Service,
    project_id: str,
    model: str,
    body: GenerateContentRequest,
    model_version: str,
    *,
    sse: bool,
    int_enums: bool = False,
) -> StreamingResponse:
    """The answer as it is generated. Everything that can be refused is refused before the
    response begins (a bad request, an unknown model), so it gets an HTTP error."""
    conversation = body.conversation()
    params = _params(body)
    if params.n > 1:
        raise InvalidArgument(
            "generationConfig.candidateCount: a streamed answer has one candidate",
            "generationConfig.candidateCount",
        )
    if params.logprobs is not None:
        raise InvalidArgument(
            "generationConfig.responseLogprobs: a streamed answer has no log probabilities",
            "generationConfig.responseLogprobs",
        )
    deltas = service.generation.stream(project_id, model, conversation, params)
    chunks = _chunks(deltas, model_version, int_enums)
    if sse:
        events = (f"data: {json.dumps(chunk)}\r\n\r\n" for chunk in chunks)
        return StreamingResponse(events, media_type="text/event-stream")
    return StreamingResponse(_json_array(chunks), media_type="application/json")


def _chunks(deltas: TextStream, model_version: str, int_enums: bool) -> Iterator[dict[str, Any]]:
    """The chunks' JSON. One delta is held back, so the last text goes out with the finish
    reason rather than in a chunk of its own."""
    identity = ResponseIdentity()
    try:
        held: str | None = None
        for text in deltas:
            if held is not None:
                chunk = GenerateContentResponse.chunk(held, model_version, identity)
                yield chunk.to_json(int_enums)
            held = text
        last = GenerateContentResponse.chunk(
            held or "",
            model_version,
            identity,
            deltas.finish_reason or "stop",
            (deltas.prompt_tokens, deltas.output_tokens),
            deltas.tool_calls,
        )
        yield last.to_json(int_enums)
    except Exception:  # the response has begun: the error goes into the stream
        log.exception("streamed generation failed")
        yield error_body(500, "internal error: the generation stopped")
    finally:
        deltas.close()


def _json_array(chunks: Iterator[dict[str, Any]]) -> Iterator[str]:
    separator = "["
    for chunk in chunks:
        yield separator + json.dumps(chunk)
        separator = ",\r\n"
    yield "[]" if separator == "[" else "]"

"""The OpenAI surface: fine-tuning jobs, models and chat completions, as the ``openai`` SDK
calls them (``OpenAI(base_url=SERVER + "/v1", api_key=KEY)``).

Each route translates OpenAI's names and shapes (:mod:`tuneforge.api.openai_schema`) and calls
the service; the rules live there.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from tuneforge.api.deps import current_project, get_service
from tuneforge.api.errors import ApiError, renamed
from tuneforge.api.openai_jobs_schema import (
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    JobCreate,
    Page,
    checkpoint_object,
    event_id,
    event_object,
    job_object,
)
from tuneforge.api.openai_schema import (
    ChatCompletion,
    ChatRequest,
    Model,
    ModelDeleted,
    ModelList,
    ToolCallOut,
    chunk_object,
    completion_header,
    model_name,
    usage_chunk_object,
)
from tuneforge.api.threaded import json_built_in_thread
from tuneforge.errors import InvalidArgument, NotFound
from tuneforge.inference.types import TextStream
from tuneforge.service import JobView, Service
from tuneforge.service.jobs import JobService
from tuneforge.store.repo_common import MAX_PAGE_SIZE

log = logging.getLogger("tuneforge.api.openai")

router = APIRouter(prefix="/v1", tags=["openai"])

Project = Annotated[str, Depends(current_project)]
Services = Annotated[Service, Depends(get_service)]
Limit = Query(ge=1, le=MAX_PAGE_SIZE)
METADATA_FILTER = re.compile(r"^metadata\[(?P<key>.+)\]$")


def job_response(service: Service, project: str, view: JobView) -> FineTuningJob:
    return job_object(view, [view.result_file] if view.result_file else [])


# --- fine-tuning jobs ---------------------------------------------------------------------


@router.post("/fine_tuning/jobs")
def create_job(body: JobCreate, project: Project, service: Services) -> FineTuningJob:
    request = body.to_job_request()
    try:
        view = service.jobs.create(project, request)
    except InvalidArgument as err:
        raise renamed(err, body.param_names()) from None
    return job_response(service, project, view)


@router.get("/fine_tuning/jobs", response_model=Page[FineTuningJob])
async def list_jobs(
    request: Request,
    project: Project,
    service: Services,
    after: str | None = None,
    limit: Annotated[int, Limit] = 20,
) -> Response:
    """``metadata[k]=v`` parameters keep the jobs whose metadata has every such pair."""
    metadata = {
        match["key"]: value
        for name, value in request.query_params.multi_items()
        if (match := METADATA_FILTER.match(name))
    }

    def page() -> Page[FineTuningJob]:
        jobs = service.jobs.list(project, limit=limit, after=after, metadata=metadata)
        return Page(
            data=[job_response(service, project, view) for view in jobs.items],
            has_more=jobs.has_more,
        )

    return await json_built_in_thread(page)


@router.get("/fine_tuning/jobs/{job_id}", response_model=FineTuningJob)
async def get_job(job_id: str, project: Project, service: Services) -> Response:
    return await json_built_in_thread(
        lambda: job_response(service, project, service.jobs.get(project, job_id))
    )


def job_action(action: Callable[[JobService, str, str], JobView]):
    def route(job_id: str, project: Project, service: Services) -> FineTuningJob:
        return job_response(service, project, action(service.jobs, project, job_id))

    return route


for name, action in {
    "cancel": JobService.cancel,
    "pause": JobService.pause,
    "resume": JobService.resume,
}.items():
    router.add_api_route(
        f"/fine_tuning/jobs/{{job_id}}/{name}",
        job_action(action),
        methods=["POST"],
        name=f"{name}_job",
    )


@router.get("/fine_tuning/jobs/{job_id}/events")
def list_events(
    job_id: str,
    project: Project,
    service: Services,
    after: str | None = None,
    limit: Annotated[int, Limit] = 20,
) -> Page[FineTuningJobEvent]:
    """Newest first, as OpenAI lists them; ``after`` is the last event id already seen."""
    after_id = event_id(after) if after else None
    events = service.jobs.events(project, job_id, after_id=after_id, limit=limit, newest_first=True)
    has_more = len(events) == limit and bool(
        service.jobs.events(project, job_id, after_id=events[-1].id, limit=1, newest_first=True)
    )
    return Page(data=[event_object(event) for event in events], has_more=has_more)


@router.get("/fine_tuning/jobs/{job_id}/checkpoints")
def list_checkpoints(
    job_id: str,
    project: Project,
    service: Services,
    after: str | None = None,
    limit: Annotated[int, Limit] = 10,
) -> Page[FineTuningJobCheckpoint]:
    """Newest first; ``after`` is the last checkpoint id already seen."""
    view = service.jobs.get(project, job_id)
    checkpoints = view.checkpoints[::-1]
    start = 0
    if after is not None:
        ids = [checkpoint.id for checkpoint in checkpoints]
        if after not in ids:
            raise ApiError(400, f"after: {after!r} is not a checkpoint of this job", param="after")
        start = ids.index(after) + 1
    shown = checkpoints[start : start + limit]
    steps = {row["step"]: row for row in service.jobs.metrics(project, job_id)["steps"]}
    return Page(
        data=[checkpoint_object(view.job, c, steps.get(c.step, {})) for c in shown],
        has_more=start + limit < len(checkpoints),
    )


# --- models -------------------------------------------------------------------------------


@router.get("/models")
def list_models(project: Project, service: Services) -> ModelList:
    """The base models and this project's tuned models."""
    return ModelList(data=[Model.of(info) for info in service.models.list(project)])


@router.get("/models/{model:path}")
def get_model(model: str, project: Project, service: Services) -> Model:
    for info in service.models.list(project):
        if model_name(info) == model:
            return Model.of(info)
    raise ApiError(404, f"model {model!r} not found", code="model_not_found", param="model")


@router.delete("/models/{model:path}")
def delete_model(model: str, project: Project, service: Services) -> ModelDeleted:
    """Delete a tuned model of this project; its job stays."""
    with model_errors(model, {}):
        service.models.delete(project, model)
    return ModelDeleted(id=model)


# --- chat completions ---------------------------------------------------------------------


@router.post("/chat/completions", response_model=ChatCompletion)
def chat_completions(
    body: ChatRequest, project: Project, service: Services
) -> ChatCompletion | StreamingResponse:
    """A completion, or with ``stream`` a StreamingResponse of its chunks (FastAPI passes a
    Response through untouched; ``response_model`` describes the other answer)."""
    body.refuse_unsupported()
    prompt = body.conversation()
    header = completion_header(body.model)
    with model_errors(body.model, body.param_names()):
        params = body.params()
        if body.stream:
            if params.n > 1:
                raise ApiError(400, "n: a streamed completion has one choice", param="n")
            deltas = service.generation.stream(project, body.model, prompt, params)
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(
                server_sent_events(header, deltas, include_usage), media_type="text/event-stream"
            )
        result = service.generation.generate(project, body.model, prompt, params)
    return ChatCompletion.of(header, result)


@contextmanager
def model_errors(model: str, names: dict[str, str]) -> Iterator[None]:
    """The service's errors about a request's model and parameters in OpenAI's shape: an
    unknown model (or another project's) is ``model_not_found``, a bad parameter is named as
    the request names it (``names``: tuneforge's names to the request's)."""
    try:
        yield
    except NotFound as err:
        message = str(err) if model in str(err) else f"model {model!r}: {err}"
        raise ApiError(404, message, code="model_not_found", param="model") from None
    except InvalidArgument as err:
        raise renamed(err, names) from None


def server_sent_events(
    header: dict[str, Any], deltas: TextStream, include_usage: bool = False
) -> Iterator[str]:
    """``chat.completion.chunk`` events: the role, the text deltas, the calls, the finish, the
    usage when asked (``stream_options.include_usage``), ``[DONE]``."""

    def event(data: dict[str, Any]) -> str:
        return f"data: {json.dumps(data)}\n\n"

    yield event(chunk_object(header, {"role": "assistant", "content": ""}))
    try:
        for text in deltas:
            yield event(chunk_object(header, {"content": text}))
    except Exception as err:  # the response has begun: the error goes into the stream
        log.exception("chat completion stream failed")
        yield event({"error": {"message": str(err), "type": "server_error", "param": None,
                               "code": None}})  # fmt: skip
        return
    if deltas.tool_calls:  # known once the turn ended: each call whole in one delta
        calls = [
            {"index": i, **ToolCallOut.of(c).model_dump()} for i, c in enumerate(deltas.tool_calls)
        ]
        yield event(chunk_object(header, {"tool_calls": calls}))
    yield event(chunk_object(header, {}, deltas.finish_reason or "stop"))
    if include_usage:
        yield event(usage_chunk_object(header, deltas.prompt_tokens, deltas.output_tokens))
    yield "data: [DONE]\n\n"

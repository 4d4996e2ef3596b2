"""The Vertex AI-compatible API: tuning jobs and generateContent, under ``/v1`` and ``/v1beta1``.

``{project}`` and ``{location}`` in a path are labels that names echo back; the API key decides
the project. Shapes and name translations live in :mod:`tuneforge.api.vertex_schema`.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse

from tuneforge.api import generate_content as generate_content_answers
from tuneforge.api.deps import current_project, get_service
from tuneforge.api.errors import renamed
from tuneforge.api.generate_content_schema import (
    ComputeTokensResponse,
    CountTokensResponse,
    GenerateContentRequest,
    GenerateContentResponse,
)
from tuneforge.api.google import ResourceName
from tuneforge.api.threaded import json_built_in_thread
from tuneforge.api.vertex_schema import (
    CreateTuningJobRequest,
    ListModelsResponse,
    ListTuningJobEventsResponse,
    ListTuningJobsResponse,
    ModelOut,
    TuningJobEvent,
    TuningJobOut,
    model_json,
    tuning_job_json,
)
from tuneforge.errors import InvalidArgument, NotFound
from tuneforge.models.names import TunedRef, parse_model_name
from tuneforge.service import JobView, Service
from tuneforge.store import repo
from tuneforge.store.repo_common import MAX_PAGE_SIZE, Page
from tuneforge.store.states import JobState

DEFAULT_PAGE_SIZE = 20
DEFAULT_EVENTS_PAGE_SIZE = 100
LOCATION = ResourceName("projects/{project}/locations/{location}")
PARENT = "/" + LOCATION.pattern
JOB = PARENT + "/tuningJobs/{job_id}"
# What a generateContent path names, under the location.
ENDPOINT = ResourceName("endpoints/{endpoint}")
PUBLISHER_MODEL = ResourceName("publishers/{publisher}/models/{model=**}")
MODEL = ResourceName("models/{model=**}")

routes = APIRouter(tags=["vertex"])
# Google's bodies leave unset fields out (proto3 JSON).
google_response = {"response_model_exclude_none": True}


def parent_of(project: str, location: str) -> str:
    return LOCATION.format(project=project, location=location)


# --- tuning jobs ------------------------------------------------------------------------------


@routes.post(PARENT + "/tuningJobs", **google_response)
def create_tuning_job(
    project: str,
    location: str,
    body: CreateTuningJobRequest,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> TuningJobOut:
    request = body.to_job_request()  # its own errors already use Vertex's names
    try:
        view = service.jobs.create(project_id, request)
    except InvalidArgument as err:
        raise renamed(err, body.vertex_names()) from None
    return tuning_job_json(view, parent_of(project, location))


@routes.get(PARENT + "/tuningJobs", response_model=ListTuningJobsResponse, **google_response)
async def list_tuning_jobs(
    project: str,
    location: str,
    page_size: int = Query(DEFAULT_PAGE_SIZE, alias="pageSize", ge=0),
    page_token: str | None = Query(None, alias="pageToken"),
    filter_: str | None = Query(None, alias="filter"),
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> Response:
    states = parse_state_filter(filter_)
    parent = parent_of(project, location)

    def page() -> ListTuningJobsResponse:
        jobs = page_of_jobs(service, project_id, page_size, page_token, states)
        return ListTuningJobsResponse(
            tuning_jobs=[tuning_job_json(view, parent) for view in jobs.items],
            next_page_token=jobs.next_page_token,
        )

    return await json_built_in_thread(page, exclude_none=True)


@routes.get(JOB, response_model=TuningJobOut, **google_response)
async def get_tuning_job(
    project: str,
    location: str,
    job_id: str,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> Response:
    parent = parent_of(project, location)
    return await json_built_in_thread(
        lambda: tuning_job_json(service.jobs.get(project_id, job_id), parent), exclude_none=True
    )


@routes.post(JOB + ":cancel")
def cancel_tuning_job(
    job_id: str,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> dict[str, Any]:
    service.jobs.cancel(project_id, job_id)
    return {}  # google.protobuf.Empty, as Vertex answers


@routes.post(JOB + ":pause", **google_response)
def pause_tuning_job(
    project: str,
    location: str,
    job_id: str,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> TuningJobOut:
    return tuning_job_json(service.jobs.pause(project_id, job_id), parent_of(project, location))


@routes.post(JOB + ":resume", **google_response)
def resume_tuning_job(
    project: str,
    location: str,
    job_id: str,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> TuningJobOut:
    return tuning_job_json(service.jobs.resume(project_id, job_id), parent_of(project, location))


@routes.get(JOB + "/events", **google_response)
def list_tuning_job_events(
    job_id: str,
    page_size: int = Query(DEFAULT_EVENTS_PAGE_SIZE, alias="pageSize", ge=0),
    page_token: str | None = Query(None, alias="pageToken"),
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> ListTuningJobEventsResponse:
    """The job's events, oldest first; ``nextPageToken`` continues after the last one."""
    if page_token is not None and not page_token.isdigit():
        raise InvalidArgument("pageToken: pass the nextPageToken of the previous page", "pageToken")
    limit = min(page_size or DEFAULT_EVENTS_PAGE_SIZE, MAX_PAGE_SIZE)
    after = int(page_token) if page_token else None
    events = service.jobs.events(project_id, job_id, after_id=after, limit=limit)
    return ListTuningJobEventsResponse(
        events=[TuningJobEvent.of(event) for event in events],
        next_page_token=str(events[-1].id) if len(events) == limit else None,
    )


@routes.get(JOB + "/metrics")
def get_tuning_job_metrics(
    job_id: str,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> dict[str, Any]:
    """The loss curve as series: ``steps`` (training metrics per step) and ``epochs``
    (validation metrics per epoch)."""
    return service.jobs.metrics(project_id, job_id)


_STATE_TERM = re.compile(r'^state\s*=\s*"?(?:JOB_STATE_)?([A-Z_]+)"?$', re.IGNORECASE)


def page_of_jobs(
    service: Service,
    project_id: str,
    page_size: int,
    page_token: str | None,
    states: list[JobState] | None,
) -> Page[JobView]:
    """A page of the project's jobs as Vertex's list routes ask for it (a page size of 0 means
    the default; none is larger than the store's cap)."""
    return service.jobs.list(
        project_id,
        limit=min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
        after=repo.decode_page_token(page_token) if page_token else None,
        states=states,
    )


def parse_state_filter(text: str | None) -> list[JobState] | None:
    """Vertex's list filter, on state only: ``state=JOB_STATE_RUNNING``, optionally several
    joined by ``OR``."""
    if not text or not text.strip():
        return None
    states = []
    for term in re.split(r"\s+OR\s+", text.strip(), flags=re.IGNORECASE):
        match = _STATE_TERM.match(term.strip())
        state = match and JobState.__members__.get(match[1].upper())
        if not state:
            raise InvalidArgument(
                f"filter {text!r}: only filters on state are supported, such as "
                f"'state=JOB_STATE_RUNNING OR state=JOB_STATE_QUEUED'; states: "
                + ", ".join(s.value for s in JobState),
                "filter",
            )
        states.append(state)
    return states


# --- tuned models (Model Registry's models.get and models.list) -----------------------------------

# What google-genai's models.list(config={"query_base": False}) sends: every tuned model.
TUNED_MODELS_FILTER = "labels.tune-type:*"


@routes.get(PARENT + "/models", response_model=ListModelsResponse, **google_response)
async def list_models(
    project: str,
    location: str,
    page_size: int = Query(DEFAULT_PAGE_SIZE, alias="pageSize", ge=0),
    page_token: str | None = Query(None, alias="pageToken"),
    filter_: str | None = Query(None, alias="filter"),
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> Response:
    """The project's tuned models, newest job first; a page may hold fewer than ``pageSize``
    (a job whose tuned model was deleted takes no place)."""
    if filter_ not in (None, "", TUNED_MODELS_FILTER):
        raise InvalidArgument(
            f"filter: only {TUNED_MODELS_FILTER!r} (every tuned model) is supported", "filter"
        )
    parent = parent_of(project, location)

    def page() -> ListModelsResponse:
        jobs = page_of_jobs(service, project_id, page_size, page_token, [JobState.SUCCEEDED])
        return ListModelsResponse(
            models=[model_json(view, parent) for view in jobs.items if view.tuned_model],
            next_page_token=jobs.next_page_token,
        )

    return await json_built_in_thread(page, exclude_none=True)


@routes.get(PARENT + "/models/{model_id}", response_model=ModelOut, **google_response)
def get_model(
    project: str,
    location: str,
    model_id: str,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> ModelOut:
    """A tuned model by its id, with or without Vertex's version (``tm-...@1``)."""
    name = model_id.split("@", 1)[0]
    reference = parse_model_name(name)
    if not isinstance(reference, TunedRef) or reference.tuned_model_id is None:
        raise NotFound(f"model {model_id!r} not found: name a tuned model (tm-...)")
    view = service.jobs.get(project_id, service.models.tuned_job(project_id, name).id)
    if view.tuned_model is None:
        raise NotFound(f"model {model_id!r} not found")
    return model_json(view, parent_of(project, location))


# --- generateContent --------------------------------------------------------------------------


@routes.post(PARENT + "/{resource:path}:generateContent", **google_response)
def generate_content(
    resource: str,
    body: GenerateContentRequest,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> GenerateContentResponse:
    """For ``endpoints/{id}`` (a tuned model or one checkpoint), ``publishers/{p}/models/{m}``
    and ``models/{m}`` (a base model, or a tuned model by its id)."""
    model = model_of_resource(service, project_id, resource)
    return generate_content_answers.generate(service, project_id, model, body, model)


@routes.post(PARENT + "/{resource:path}:streamGenerateContent")
def stream_generate_content(
    resource: str,
    body: GenerateContentRequest,
    alt: str | None = None,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> StreamingResponse:
    """The same resources, streamed: server-sent events with ``alt=sse`` (as google-genai's
    ``generate_content_stream`` asks), else a JSON array."""
    model = model_of_resource(service, project_id, resource)
    return generate_content_answers.stream(
        service, project_id, model, body, model, sse=alt == "sse"
    )


@routes.post(PARENT + "/{resource:path}:countTokens", **google_response)
def count_tokens(
    resource: str,
    body: GenerateContentRequest,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> CountTokensResponse:
    """The prompt's tokens on the same resources as generateContent, with the same tokenizer
    and chat template: ``totalTokens`` is the answer's ``promptTokenCount``."""
    model = model_of_resource(service, project_id, resource)
    return CountTokensResponse.of(
        generate_content_answers.prompt_tokens(service, project_id, model, body)
    )


@routes.post(PARENT + "/{resource:path}:computeTokens", **google_response)
def compute_tokens(
    resource: str,
    body: GenerateContentRequest,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> ComputeTokensResponse:
    """The prompt's tokens themselves, a list per content."""
    model = model_of_resource(service, project_id, resource)
    return ComputeTokensResponse.of(
        generate_content_answers.prompt_tokens(service, project_id, model, body)
    )


def model_of_resource(service: Service, project_id: str, resource: str) -> str:
    """The model name the service knows for the resource in a generateContent path."""
    if endpoint := ENDPOINT.parse(resource):
        if not isinstance(parse_model_name(endpoint["endpoint"]), TunedRef):
            raise NotFound(f"endpoint {endpoint['endpoint']!r} not found")
        return endpoint["endpoint"]
    if published := PUBLISHER_MODEL.parse(resource):
        publisher, model = published["publisher"], published["model"]
        return _base_or_tuned(service, project_id, f"{publisher}/{model}", model)
    if named := MODEL.parse(resource):
        return named["model"]
    raise NotFound(
        f"{resource!r} is not a model: use endpoints/ID, publishers/PUBLISHER/models/MODEL or "
        "models/MODEL"
    )


def _base_or_tuned(service: Service, project_id: str, qualified: str, model: str) -> str:
    """The SDK sends ``a/b`` as ``publishers/a/models/b`` and a bare ``b`` as
    ``publishers/google/models/b``: try the qualified name first, then the bare one."""
    if isinstance(parse_model_name(model), TunedRef):
        return model
    try:
        service.models.target(project_id, qualified)
    except NotFound:
        return model
    return qualified


router = APIRouter()
router.include_router(routes, prefix="/v1")
router.include_router(routes, prefix="/v1beta1", include_in_schema=False)

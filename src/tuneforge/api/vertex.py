"""The Vertex AI-compatible API: tuning jobs and generateContent, under ``/v1`` and ``/v1beta1``.

``{project}`` and ``{location}`` in a path are labels that names echo back; the API key decides
the project. Shapes and name translations live in :mod:`tuneforge.api.vertex_schema`.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Query

from tuneforge.api.deps import current_project, get_service
from tuneforge.api.vertex_schema import (
    GENERATION_NAMES,
    CreateTuningJobRequest,
    GenerateContentRequest,
    event_json,
    generate_content_json,
    in_vertex_terms,
    tuning_job_json,
)
from tuneforge.errors import InvalidArgument, NotFound
from tuneforge.models.names import TunedRef, parse_model_name
from tuneforge.service import Service
from tuneforge.store import repo
from tuneforge.store.repo_common import MAX_PAGE_SIZE
from tuneforge.store.states import JobState

DEFAULT_PAGE_SIZE = 20
DEFAULT_EVENTS_PAGE_SIZE = 100
PARENT = "/projects/{project}/locations/{location}"
JOB = PARENT + "/tuningJobs/{job_id}"

routes = APIRouter(tags=["vertex"])


def parent_of(project: str, location: str) -> str:
    return f"projects/{project}/locations/{location}"


# --- tuning jobs ------------------------------------------------------------------------------


@routes.post(PARENT + "/tuningJobs")
def create_tuning_job(
    project: str,
    location: str,
    body: CreateTuningJobRequest,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> dict[str, Any]:
    request = body.to_job_request()  # its own errors already use Vertex's names
    try:
        view = service.jobs.create(project_id, request)
    except InvalidArgument as err:
        raise in_vertex_terms(err, body.vertex_names()) from None
    return tuning_job_json(view, parent_of(project, location))


@routes.get(PARENT + "/tuningJobs")
def list_tuning_jobs(
    project: str,
    location: str,
    page_size: int = Query(DEFAULT_PAGE_SIZE, alias="pageSize", ge=0),
    page_token: str | None = Query(None, alias="pageToken"),
    filter_: str | None = Query(None, alias="filter"),
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> dict[str, Any]:
    page = service.jobs.list(
        project_id,
        limit=min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
        after=repo.decode_page_token(page_token) if page_token else None,
        states=parse_state_filter(filter_),
    )
    parent = parent_of(project, location)
    body: dict[str, Any] = {"tuningJobs": [tuning_job_json(view, parent) for view in page.items]}
    if page.next_page_token:
        body["nextPageToken"] = page.next_page_token
    return body


@routes.get(JOB)
def get_tuning_job(
    project: str,
    location: str,
    job_id: str,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> dict[str, Any]:
    return tuning_job_json(service.jobs.get(project_id, job_id), parent_of(project, location))


@routes.post(JOB + ":cancel")
def cancel_tuning_job(
    job_id: str,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> dict[str, Any]:
    service.jobs.cancel(project_id, job_id)
    return {}  # google.protobuf.Empty, as Vertex answers


@routes.post(JOB + ":pause")
def pause_tuning_job(
    project: str,
    location: str,
    job_id: str,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> dict[str, Any]:
    return tuning_job_json(service.jobs.pause(project_id, job_id), parent_of(project, location))


@routes.post(JOB + ":resume")
def resume_tuning_job(
    project: str,
    location: str,
    job_id: str,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> dict[str, Any]:
    return tuning_job_json(service.jobs.resume(project_id, job_id), parent_of(project, location))


@routes.get(JOB + "/events")
def list_tuning_job_events(
    job_id: str,
    page_size: int = Query(DEFAULT_EVENTS_PAGE_SIZE, alias="pageSize", ge=0),
    page_token: str | None = Query(None, alias="pageToken"),
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> dict[str, Any]:
    """The job's events, oldest first; ``nextPageToken`` continues after the last one."""
    if page_token is not None and not page_token.isdigit():
        raise InvalidArgument("pageToken: pass the nextPageToken of the previous page", "pageToken")
    limit = min(page_size or DEFAULT_EVENTS_PAGE_SIZE, MAX_PAGE_SIZE)
    after = int(page_token) if page_token else None
    events = service.jobs.events(project_id, job_id, after_id=after, limit=limit)
    body: dict[str, Any] = {"events": [event_json(event) for event in events]}
    if len(events) == limit:
        body["nextPageToken"] = str(events[-1].id)
    return body


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


# --- generateContent --------------------------------------------------------------------------


@routes.post(PARENT + "/{resource:path}:generateContent")
def generate_content(
    resource: str,
    body: GenerateContentRequest,
    project_id: str = Depends(current_project),
    service: Service = Depends(get_service),
) -> dict[str, Any]:
    """For ``endpoints/{id}`` (a tuned model or one checkpoint), ``publishers/{p}/models/{m}``
    and ``models/{m}`` (a base model, or a tuned model by its id)."""
    model = model_of_resource(service, project_id, resource)
    conversation = body.conversation()
    try:
        params = body.generation_config.to_params()
    except InvalidArgument as err:
        raise in_vertex_terms(err, GENERATION_NAMES) from None
    result = service.generation.generate(project_id, model, conversation, params)
    return generate_content_json(result, model)


def model_of_resource(service: Service, project_id: str, resource: str) -> str:
    """The model name the service knows for the resource in a generateContent path."""
    parts = resource.split("/")
    if len(parts) == 2 and parts[0] == "endpoints":
        if not isinstance(parse_model_name(parts[1]), TunedRef):
            raise NotFound(f"endpoint {parts[1]!r} not found")
        return parts[1]
    if len(parts) >= 4 and parts[0] == "publishers" and parts[2] == "models":
        publisher, model = parts[1], "/".join(parts[3:])
        return _base_or_tuned(service, project_id, f"{publisher}/{model}", model)
    if len(parts) >= 2 and parts[0] == "models":
        return "/".join(parts[1:])
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

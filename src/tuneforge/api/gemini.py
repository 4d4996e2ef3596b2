"""The Gemini API's ``tunedModels`` surface, under ``/v1`` and ``/v1beta`` (``google-genai``
3.x calls ``/v1``, the legacy ``google-generativeai`` SDK and the docs' curl samples
``/v1beta``, and the docs poll operations on ``/v1``).

A tuned model is created from inline examples as a long-running Operation, followed, renamed,
deleted, and asked for content. Every tuning job of the project is one of its tuned models, so a
model tuned on any surface is reachable here (``tunedModels/tj-...``), and one made here is
reachable on the others (its operation id is its job's id). Shapes live in
:mod:`tuneforge.api.gemini_schema`.
"""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic.alias_generators import to_camel

from tuneforge.api import generate_content as generate_content_answers
from tuneforge.api.deps import api_key_of, get_service
from tuneforge.api.errors import ApiError, renamed
from tuneforge.api.gemini_schema import (
    EXAMPLES,
    PARAM_NAMES,
    CreateTunedModelRequest,
    check_tuned_model_id,
    examples_jsonl,
    gemini_id,
    gemini_state,
    operation_json,
    parse_json_body,
    tuned_model_json,
    validated,
)
from tuneforge.api.generate_content_schema import GenerateContentRequest
from tuneforge.errors import Conflict, InvalidArgument, NotFound
from tuneforge.service import JobView, Service
from tuneforge.store import repo
from tuneforge.store.repo_common import MAX_PAGE_SIZE
from tuneforge.store.states import JobState

DEFAULT_PAGE_SIZE = 10  # the Gemini API's
UPDATABLE = {"displayName": "display_name", "description": "description"}

routes = APIRouter(tags=["gemini"])


# --- what every route reads ------------------------------------------------------------------


def query(request: Request, name: str) -> str | None:
    """A query parameter in camelCase (as the SDKs send it) or snake_case (as curl users do)."""
    params = request.query_params
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
    return params.get(name, params.get(snake))


def int_enums(request: Request) -> bool:
    """Whether the request asks for enums as numbers (the legacy SDK's
    ``$alt=json;enum-encoding=int``); google-genai cannot read them, so strings otherwise."""
    return "enum-encoding=int" in request.query_params.get("$alt", "")


def _key_in_page_token(request: Request) -> str | None:
    # The docs' curl sample appends "?key=..." to the page token instead of "&key=...".
    token = query(request, "pageToken") or ""
    return token.partition("?key=")[2] or None


def gemini_project(request: Request, service: Service = Depends(get_service)) -> str:
    """The project of the API key in ``x-goog-api-key``, ``?key=`` or ``Authorization``."""
    key = request.query_params.get("key") or api_key_of(request) or _key_in_page_token(request)
    if key is None:
        raise ApiError(
            401,
            "missing API key: send it in the x-goog-api-key header or as ?key=KEY",
            google_status="UNAUTHENTICATED",
        )
    project_id = service.keys.authenticate(key)
    if project_id is None:
        raise ApiError(401, "invalid or revoked API key", google_status="UNAUTHENTICATED")
    return project_id


async def _read_body(request: Request, limit: int | None) -> bytes:
    def too_large() -> InvalidArgument:
        return InvalidArgument(
            f"the request is larger than {limit} bytes, the limit on a tuning request with "
            "inline examples (TUNEFORGE_MAX_INLINE_DATASET_BYTES; 4 MB by default, as the "
            "Gemini API's): send fewer examples, or upload them (POST /v1/files) and tune "
            "through the Vertex API's tuningJobs",
            EXAMPLES,
        )

    declared = request.headers.get("content-length", "")
    if limit is not None and declared.isdigit() and int(declared) > limit:
        raise too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if limit is not None and size > limit:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request) -> Any:
    return parse_json_body(await _read_body(request, None))


async def create_body(request: Request, service: Service = Depends(get_service)) -> Any:
    return parse_json_body(await _read_body(request, service.settings.max_inline_dataset_bytes))


def tuned_model(service: Service, project_id: str, model_id: str) -> tuple[JobView, str]:
    """The job behind ``tunedModels/{model_id}`` and that model's name; 404 if the project has
    no such model (another project's is answered the same)."""
    try:
        view = service.jobs.find(project_id, model_id)
    except NotFound:
        raise NotFound(
            f"tunedModels/{model_id} not found: GET /v1beta/tunedModels lists yours"
        ) from None
    suffix = view.job.suffix
    owners = service.jobs.suffix_owners(project_id, [suffix]) if suffix else {}
    return view, f"tunedModels/{gemini_id(view, owners.get(suffix or ''))}"


def _steps(service: Service, project_id: str, view: JobView) -> list[dict[str, Any]]:
    return service.jobs.metrics(project_id, view.job.id)["steps"]


Project = Depends(gemini_project)
Services = Depends(get_service)


# --- tuned models ----------------------------------------------------------------------------


@routes.post("/tunedModels")
def create_tuned_model(
    request: Request,
    body: Any = Depends(create_body),
    project_id: str = Project,
    service: Service = Services,
) -> dict[str, Any]:
    """Validate the inline examples as an upload is validated, store them as a file of the
    project, and queue the job; answer its Operation."""
    create = validated(CreateTunedModelRequest, body)
    tuned_model_id = query(request, "tunedModelId")
    if tuned_model_id:
        check_tuned_model_id(tuned_model_id)
        if service.jobs.suffix_owners(project_id, [tuned_model_id]):
            raise ApiError(
                409,
                f"tunedModels/{tuned_model_id} already exists: choose another tunedModelId, or "
                "delete that model first",
                google_status="ALREADY_EXISTS",
            )
    client = request.headers.get("x-goog-api-client", "") + request.headers.get("user-agent", "")
    examples = create.examples(from_genai_sdk="google-genai-sdk/" in client)
    pre_tuned = _pre_tuned(service, project_id, create)
    job_request = create.job_request("", tuned_model_id, pre_tuned)
    dataset = examples_jsonl(examples)
    upload = service.files.upload(
        project_id,
        f"{tuned_model_id or 'tuned-model'}-examples.jsonl",
        io.BytesIO(dataset),
        "fine-tune",
    )
    try:
        view = service.jobs.create(project_id, replace(job_request, training_file=upload.id))
    except BaseException as err:
        service.files.delete(project_id, upload.id)
        if isinstance(err, InvalidArgument):
            raise renamed(err, PARAM_NAMES) from None
        raise
    return operation_json(view, f"tunedModels/{tuned_model_id or view.job.id}", [])


def _pre_tuned(service: Service, project_id: str, create: CreateTunedModelRequest) -> str | None:
    """The job id of the tuned model to go on from (``tunedModelSource.tunedModel``, or a
    ``tunedModels/...`` baseModel), or None."""
    if create.tuned_model_source is not None:
        source, param = create.tuned_model_source.tuned_model, "tunedModelSource.tunedModel"
    elif (create.base_model or "").startswith("tunedModels/"):
        source, param = create.base_model or "", "baseModel"
    else:
        return None
    try:
        view, name = tuned_model(service, project_id, source.removeprefix("tunedModels/"))
    except NotFound as err:
        raise InvalidArgument(f"{param}: {err}", param) from None
    if view.job.state != JobState.SUCCEEDED:
        raise InvalidArgument(
            f"{param}: {name} is {gemini_state(view)}; tuning can go on from an ACTIVE model",
            param,
        )
    return view.job.id


@routes.get("/tunedModels")
def list_tuned_models(
    request: Request, project_id: str = Project, service: Service = Services
) -> JSONResponse:
    """Newest first, ``pageSize`` (10 by default) a page; ``nextPageToken`` continues."""
    size_text = query(request, "pageSize") or str(DEFAULT_PAGE_SIZE)
    if not size_text.isdigit():
        raise InvalidArgument(f"pageSize: expected a whole number, got {size_text!r}", "pageSize")
    token = (query(request, "pageToken") or "").partition("?key=")[0]
    try:
        after = repo.decode_page_token(token) if token else None
    except InvalidArgument:
        raise InvalidArgument(
            "pageToken: pass the nextPageToken of the previous page as it is", "pageToken"
        ) from None
    limit = min(int(size_text) or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    try:
        page = service.jobs.list(project_id, limit=limit, after=after)
    except InvalidArgument:  # a token of another list, or of a deleted model
        raise InvalidArgument(
            "pageToken: not a page of this list; start again without pageToken", "pageToken"
        ) from None
    owners = service.jobs.suffix_owners(
        project_id, [v.job.suffix for v in page.items if v.job.suffix]
    )
    models = [
        tuned_model_json(
            view,
            f"tunedModels/{gemini_id(view, owners.get(view.job.suffix or ''))}",
            None,
            int_enums(request),
        )
        for view in page.items
    ]
    body: dict[str, Any] = {"tunedModels": models} if models else {}
    if page.next_page_token:
        body["nextPageToken"] = page.next_page_token
    return JSONResponse(body)


@routes.get("/tunedModels/{model_id}")
def get_tuned_model(
    model_id: str, request: Request, project_id: str = Project, service: Service = Services
) -> JSONResponse:
    view, name = tuned_model(service, project_id, model_id)
    steps = _steps(service, project_id, view)
    return JSONResponse(tuned_model_json(view, name, steps, int_enums(request)))


@routes.patch("/tunedModels/{model_id}")
def update_tuned_model(
    model_id: str,
    request: Request,
    body: Any = Depends(json_body),
    project_id: str = Project,
    service: Service = Services,
) -> JSONResponse:
    """Change the fields ``updateMask`` names, or without one the updatable fields the body
    has (google-genai sends no mask); output-only fields in the body are ignored."""
    view, name = tuned_model(service, project_id, model_id)
    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a TunedModel object")
    mask = query(request, "updateMask")
    if mask is not None:
        paths = [to_camel(path.strip()) for path in mask.split(",") if path.strip()]
        if wrong := [path for path in paths if path not in UPDATABLE]:
            raise InvalidArgument(
                f"updateMask: {', '.join(wrong)} cannot be updated; the fields that can are "
                f"{' and '.join(UPDATABLE)}",
                "updateMask",
            )
    else:
        paths = [path for path, snake in UPDATABLE.items() if path in body or snake in body]
    if not paths:
        raise InvalidArgument(
            f"nothing to update: give {' or '.join(UPDATABLE)} (and updateMask naming them)",
            "updateMask",
        )
    values: dict[str, str] = {}
    for path in paths:
        value = body.get(path, body.get(UPDATABLE[path], ""))
        if not isinstance(value, str):
            raise InvalidArgument(f"{path}: expected a string", path)
        values[UPDATABLE[path]] = value
    try:
        view = service.jobs.describe(project_id, view.job.id, **values)
    except InvalidArgument as err:
        raise renamed(err, PARAM_NAMES) from None
    steps = _steps(service, project_id, view)
    return JSONResponse(tuned_model_json(view, name, steps, int_enums(request)))


@routes.delete("/tunedModels/{model_id}")
def delete_tuned_model(
    model_id: str, project_id: str = Project, service: Service = Services
) -> dict[str, Any]:
    view, name = tuned_model(service, project_id, model_id)
    try:
        service.jobs.delete(project_id, view.job.id)
    except Conflict:
        raise Conflict(
            f"{name} is still being created: cancel its operation (POST "
            f"{name}/operations/{view.job.id}:cancel), then delete it once it has stopped"
        ) from None
    return {}


# --- its operation -----------------------------------------------------------------------------


def _operation(
    service: Service, project_id: str, model_id: str, operation_id: str
) -> tuple[JobView, str]:
    view, name = tuned_model(service, project_id, model_id)
    if operation_id != view.job.id:
        raise NotFound(
            f"operation tunedModels/{model_id}/operations/{operation_id} not found: "
            "use the name the create answered"
        )
    return view, name


@routes.get("/tunedModels/{model_id}/operations/{operation_id}")
def get_operation(
    model_id: str, operation_id: str, project_id: str = Project, service: Service = Services
) -> dict[str, Any]:
    view, name = _operation(service, project_id, model_id, operation_id)
    return operation_json(view, name, _steps(service, project_id, view))


def _cancel(service: Service, project_id: str, view: JobView, name: str) -> dict[str, Any]:
    try:
        service.jobs.cancel(project_id, view.job.id)
    except Conflict:
        raise Conflict(
            f"{name} is {gemini_state(view)}: its tuning has ended, there is nothing to cancel"
        ) from None
    return {}


@routes.post("/tunedModels/{model_id}/operations/{operation_id}:cancel")
def cancel_operation(
    model_id: str, operation_id: str, project_id: str = Project, service: Service = Services
) -> dict[str, Any]:
    view, name = _operation(service, project_id, model_id, operation_id)
    return _cancel(service, project_id, view, name)


@routes.post("/tunedModels/{model_id}:cancel")
def cancel_tuned_model(
    model_id: str, project_id: str = Project, service: Service = Services
) -> dict[str, Any]:
    """google-genai's ``tunings.cancel`` (not in the Gemini API itself): cancel the tuning."""
    view, name = tuned_model(service, project_id, model_id)
    return _cancel(service, project_id, view, name)


# --- generateContent -------------------------------------------------------------------------


def _active_model(service: Service, project_id: str, model_id: str) -> tuple[JobView, str]:
    view, name = tuned_model(service, project_id, model_id)
    if view.job.state != JobState.SUCCEEDED:
        raise Conflict(
            f"{name} is {gemini_state(view)}: it answers once ACTIVE, when its tuning operation "
            "is done"
        )
    return view, name


@routes.post("/tunedModels/{model_id}:generateContent")
def generate_content(
    model_id: str,
    request: Request,
    body: Any = Depends(json_body),
    project_id: str = Project,
    service: Service = Services,
) -> JSONResponse:
    view, name = _active_model(service, project_id, model_id)
    content = validated(GenerateContentRequest, body)
    answer = generate_content_answers.generate(service, project_id, view.job.id, content, name)
    return JSONResponse(answer.to_json(int_enums(request)))


@routes.post("/tunedModels/{model_id}:streamGenerateContent")
def stream_generate_content(
    model_id: str,
    request: Request,
    body: Any = Depends(json_body),
    project_id: str = Project,
    service: Service = Services,
) -> StreamingResponse:
    """A JSON array of chunks (the legacy SDK), or server-sent events with ``alt=sse``
    (google-genai)."""
    view, name = _active_model(service, project_id, model_id)
    content = validated(GenerateContentRequest, body)
    return generate_content_answers.stream(
        service,
        project_id,
        view.job.id,
        content,
        name,
        sse=request.query_params.get("alt") == "sse",
        int_enums=int_enums(request),
    )


router = APIRouter()
router.include_router(routes, prefix="/v1")
router.include_router(routes, prefix="/v1beta", include_in_schema=False)

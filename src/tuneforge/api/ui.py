"""The web dashboard: server-rendered pages over the same Service as the APIs.

Signing in stores the API key in an HttpOnly, SameSite=Strict cookie; every page checks it
(the key decides the project, as on the APIs). Every POST form also carries a CSRF token and
must come from this server's own origin (``ui_guard``); every response carries a
Content-Security-Policy and refuses to be framed. Errors of the service become an error page
with their message.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

from tuneforge.api import files as files_api
from tuneforge.api.deps import get_service
from tuneforge.api.errors import status_of
from tuneforge.api.files import PURPOSES
from tuneforge.api.files import _filename as upload_filename
from tuneforge.api.ui_guard import (
    FIELD,
    LOGIN_COOKIE,
    LOGIN_COOKIE_MAX_AGE,
    SECURITY_HEADERS,
    FormRefused,
    check_same_origin,
    check_token,
    new_login_token,
    session_token,
)
from tuneforge.data.media import media_limits
from tuneforge.errors import InvalidArgument, NotFound, TuneforgeError
from tuneforge.service import JobRequest, ModelInfo, Service
from tuneforge.service.jobs import JobService
from tuneforge.service.model_export import export_model, exported_target
from tuneforge.ui import STATIC_DIR, TEMPLATES_DIR, evaluation, new_job, present, try_it
from tuneforge.ui.svg import histogram_svg, loss_curve_svg, metric_charts_svg

COOKIE = "tuneforge_key"
LOGIN_PATH = "/ui/login"
COOKIE_MAX_AGE = 30 * 24 * 3600
REFRESH_SECONDS = 5
JOBS_PER_PAGE = 50
FILES_PER_PAGE = 100
EVENTS_SHOWN = 100
EVENTS_SCANNED = 1000
DEFAULT_MAX_TOKENS = 64
STATIC_URL = "/ui/static"
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
STATIC_CACHE_CONTROL = "max-age=300"
FIELD_BYTES = 1024 * 1024  # Starlette's default largest form field
TRY_IT_PATH = "/ui/models/{name:path}"
# Forms with larger fields: "Try it" carries its conversation's files as base64 data URLs.
LARGE_FIELDS = {TRY_IT_PATH: try_it.CARRIED_FIELD_BYTES}


class LoginRequired(Exception):
    """No valid key in the cookie: the page redirects to the sign-in form."""


class DashboardRoute(APIRoute):
    """Refuses a POST that may come from another site (before the route runs), turns a
    missing sign-in into a redirect and the service's errors into an error page, and adds
    the security headers to every response."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        is_login = self.path == LOGIN_PATH
        max_field = LARGE_FIELDS.get(self.path, FIELD_BYTES)

        async def dashboard_handler(request: Request) -> Response:
            response = await respond(request)
            response.headers.update(SECURITY_HEADERS)
            return response

        async def respond(request: Request) -> Response:
            try:
                if request.method == "POST":
                    await _check_form(request, is_login=is_login, max_field=max_field)
                return await handler(request)
            except FormRefused as err:
                return error_page(request, 403, f"Refused: {err.reason}.")
            except LoginRequired:
                return RedirectResponse(_login_url(request), status_code=303)
            except TuneforgeError as err:
                return error_page(request, status_of(err)[0], str(err))
            except RequestValidationError as err:
                first = err.errors()[0]
                field = ".".join(str(p) for p in first["loc"][1:])
                return error_page(request, 400, f"{field}: {first['msg']}")
            except HTTPException as err:  # a form Starlette cannot parse (a field over 1 MB)
                return error_page(request, err.status_code, str(err.detail))

        return dashboard_handler


async def _check_form(request: Request, *, is_login: bool, max_field: int = FIELD_BYTES) -> None:
    """A form from this server's own pages: same origin, and the token its page carried
    (the sign-in form's cookie, or the one derived from the session). The form is parsed here
    first, with ``max_field`` the largest field; the route reads the same parsed form."""
    check_same_origin(request)
    sent = (await request.form(max_part_size=max_field)).get(FIELD)
    if is_login:
        expected = request.cookies.get(LOGIN_COOKIE)
    else:
        expected = _session_form_token(request)
        if expected is None:
            return  # no session: the route sends the browser to sign in and changes nothing
    check_token(sent if isinstance(sent, str) else None, expected)


def _session_form_token(request: Request) -> str | None:
    secret = request.cookies.get(COOKIE)
    return session_token(secret) if secret else None


router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        time=present.timestamp,
        duration=present.duration,
        size=present.file_size,
        number=present.number,
        state_label=lambda state: present.STATE_LABELS.get(state, str(state)),
        plural=present.plural,
    )
    return env


templates = Jinja2Templates(env=_environment())


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    context.setdefault("refresh", None)
    context.setdefault("active", None)
    context.setdefault("csrf_token", _session_form_token(request) or "")
    context["project"] = getattr(request.state, "project", None)
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def error_page(request: Request, status: int, message: str) -> Response:
    return render(request, "error.html", status, status=status, message=message)


def signed_in(request: Request, service: Service = Depends(get_service)) -> str:
    """The project of the key in the sign-in cookie."""
    project_id = service.keys.authenticate(request.cookies.get(COOKIE))
    if project_id is None:
        raise LoginRequired
    request.state.project = project_id
    return project_id


def _login_url(request: Request) -> str:
    return f"/ui/login?next={quote(request.url.path)}"


def _safe_next(target: str | None) -> str:
    """Only a dashboard path: never another site after signing in."""
    if target and target.startswith("/ui") and not target.startswith("//"):
        return target
    return "/ui"


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _histograms(stats: present.StatsView | None) -> dict[str, str]:
    """Each distribution's histogram, by its label."""
    if stats is None:
        return {}
    return {label: histogram_svg(dist.get("buckets") or []) for label, dist in stats.distributions}


# --- static files ---------------------------------------------------------------------------


class StaticAssets(StaticFiles):
    """The dashboard's stylesheet, script and icon, mounted at ``STATIC_URL``.

    Starlette serves them (HEAD, ETag and If-None-Match, no way out of the folder); this adds
    what it leaves to the platform: only the types in ``STATIC_TYPES`` are served, each with
    its fixed content type (Python's table gives ``.js`` another type on some systems), and
    browsers may keep them for five minutes."""

    def __init__(self) -> None:
        super().__init__(directory=STATIC_DIR)

    async def get_response(self, path: str, scope: Scope) -> Response:
        if PurePosixPath(path).suffix not in STATIC_TYPES:
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = FileResponse(
            full_path,
            status_code=status_code,
            headers={"Cache-Control": STATIC_CACHE_CONTROL, "X-Content-Type-Options": "nosniff"},
            media_type=STATIC_TYPES[PurePosixPath(full_path).suffix],
            stat_result=stat_result,
        )
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response


# --- sign-in --------------------------------------------------------------------------------


@router.get("/")
def home() -> RedirectResponse:
    return _see_other("/ui")


@router.get(LOGIN_PATH)
def login_form(request: Request, next: str = "/ui") -> Response:
    return _login_page(request, 200, next=_safe_next(next), error=None)


def _login_page(request: Request, status_code: int, **context: Any) -> Response:
    """The sign-in form with its pre-session token, also set in a cookie for the POST."""
    token = request.cookies.get(LOGIN_COOKIE) or new_login_token()
    response = render(request, "login.html", status_code, csrf_token=token, **context)
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=LOGIN_COOKIE_MAX_AGE,
        path=LOGIN_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post(LOGIN_PATH)
def login(
    request: Request,
    key: str = Form(""),
    next: str = Form("/ui"),
    service: Service = Depends(get_service),
) -> Response:
    key = key.strip()
    if service.keys.authenticate(key) is None:
        error = "That key is not valid (or was revoked)." if key else "Paste an API key."
        return _login_page(request, 401, next=_safe_next(next), error=error)
    response = _see_other(_safe_next(next))
    response.delete_cookie(LOGIN_COOKIE, path=LOGIN_PATH, httponly=True, samesite="strict")
    response.set_cookie(
        COOKIE,
        key,
        max_age=COOKIE_MAX_AGE,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/ui/logout")
def logout_form(request: Request, project_id: str = Depends(signed_in)) -> Response:
    """Signing out is a POST (a link or an image on another page must not do it): this
    page only offers the button."""
    return render(request, "logout.html")


@router.post("/ui/logout")
def logout() -> Response:
    response = _see_other("/ui/login")
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


# --- jobs -----------------------------------------------------------------------------------


@router.get("/ui")
def jobs_page(
    request: Request,
    after: str | None = None,
    state: str = "",
    q: str = "",
    project_id: str = Depends(signed_in),
    service: Service = Depends(get_service),
) -> Response:
    """The project's jobs, newest first; ``state`` (a label: running, failed, ...) and ``q``
    (part of an id, display name, suffix or base model) narrow the list in the database."""
    states = [present.state_of_label(state)] if state else None
    page = service.jobs.list(
        project_id, limit=JOBS_PER_PAGE, after=after, states=states, search=q.strip() or None
    )
    rows = [(view, present.progress(view.job)) for view in page.items]
    active = any(present.is_active(view.job) for view in page.items)
    filters = {k: v for k, v in (("state", state), ("q", q.strip())) if v}
    return render(
        request,
        "jobs.html",
        active="jobs",
        rows=rows,
        state=state,
        q=q.strip(),
        state_labels=list(present.STATE_LABELS.values()),
        filtered=bool(filters),
        next_page=f"/ui?{urlencode({**filters, 'after': page.next_after})}"
        if page.next_after
        else None,
        refresh=REFRESH_SECONDS if active else None,
    )


# --- new job (before /ui/jobs/{job_id}: "new" is no job id) -------------------------------


@router.get("/ui/jobs/new")
def new_job_page(
    request: Request,
    file: str = "",
    model: str = "",
    method: str = "supervised",
    project_id: str = Depends(signed_in),
    service: Service = Depends(get_service),
) -> Response:
    form = new_job.JobForm.of({"training_file": file, "model": model, "method": method})
    return _new_job_page(request, service, project_id, form)


@router.post("/ui/jobs/new")
async def new_job_submit(
    request: Request,
    project_id: str = Depends(signed_in),
    service: Service = Depends(get_service),
) -> Response:
    """The form's two buttons: "Preview" shows the page again for the choices made, "Start
    tuning" creates the job through the service (its error, if any, shown on the form)."""
    fields = await request.form()
    form = new_job.JobForm.of({k: v for k, v in fields.items() if isinstance(v, str)})
    if fields.get("intent") != "create":
        return await run_in_threadpool(_new_job_page, request, service, project_id, form)
    try:
        job_request = JobRequest(
            base_model=form.model,
            training_file=form.training_file,
            validation_file=form.validation_file or None,
            method=form.method,
            mode="full" if form.mode == "full" else "peft",
            hyperparameters=form.hyperparameter_values(),
            suffix=form.suffix or None,
            display_name=form.display_name or None,
        )
        if not form.model:
            raise InvalidArgument("choose a base model", "base_model")
        if not form.training_file:
            raise InvalidArgument("choose a training file", "training_file")
        view = await run_in_threadpool(service.jobs.create, project_id, job_request)
    except TuneforgeError as err:
        return await run_in_threadpool(
            _new_job_page, request, service, project_id, form, status_of(err)[0], str(err)
        )
    return _see_other(f"/ui/jobs/{view.job.id}")


@router.post("/ui/jobs/new/upload")
def new_job_upload(
    request: Request,
    file: UploadFile | None = File(None),
    project_id: str = Depends(signed_in),
    service: Service = Depends(get_service),
) -> Response:
    """Upload a training file without leaving the page: back to it with the file chosen."""
    if file is None or not file.filename:
        raise InvalidArgument("choose a file to upload", "file")
    row = service.files.upload(project_id, upload_filename(file.filename), file.file, "fine-tune")
    return _see_other(f"/ui/jobs/new?file={quote(row.id)}")


def _new_job_page(
    request: Request,
    service: Service,
    project_id: str,
    form: new_job.JobForm,
    status_code: int = 200,
    error: str | None = None,
) -> Response:
    models = service.models.list(project_id)
    if not form.model and models:
        form.model = models[0].id
    methods = new_job.offered_methods()
    method = next((m for m in methods if m.name == form.method), methods[0])
    form.method = method.name
    model = new_job.chosen_model(models, form.model)
    preview = new_job.preview(service, project_id, form, model)
    resolved = preview.resolved if preview else None
    return render(
        request,
        "new_job.html",
        status_code,
        active="jobs",
        form=form,
        error=error,
        files=new_job.offered_files(service, project_id),
        models=models,
        methods=methods,
        method=method,
        modes=new_job.MODES,
        hyperparameters=new_job.hyperparameter_rows(method, form, resolved),
        hp_prefix=new_job.HP_PREFIX,
        preview=preview,
        histograms=_histograms(preview.stats_view if preview else None),
        distribution_columns=present.DISTRIBUTION_COLUMNS,
    )


@router.get("/ui/jobs/{job_id}")
def job_page(
    request: Request,
    job_id: str,
    steps: bool = False,
    scale: str = "log",
    test_file: str = "",
    project_id: str = Depends(signed_in),
    service: Service = Depends(get_service),
) -> Response:
    form = evaluation.EvaluationForm(test_file=test_file)
    return _job_page(request, service, project_id, job_id, form, steps=steps, scale=scale)


def _job_page(
    request: Request,
    service: Service,
    project_id: str,
    job_id: str,
    evaluation_form: evaluation.EvaluationForm,
    *,
    steps: bool = False,
    scale: str = "log",
    status_code: int = 200,
    **context: Any,
) -> Response:
    view = service.jobs.get(project_id, job_id)
    job = view.job
    metrics = service.jobs.metrics(project_id, job_id)
    events = _events_shown(service, project_id, job_id, with_steps=steps)
    stats = present.stats_view(job.data_stats)
    context = {"evaluation": None, "evaluation_error": None, **context}
    return render(
        request,
        "job.html",
        status_code,
        active="jobs",
        view=view,
        job=job,
        progress=present.progress(job),
        actions=present.job_actions(job),
        last_step=metrics["steps"][-1] if metrics["steps"] else None,
        epochs=metrics["epochs"],
        loss_curve=loss_curve_svg(metrics["steps"], metrics["epochs"], log_scale=scale != "linear"),
        metric_charts=metric_charts_svg(metrics["steps"], metrics["epochs"]),
        log_scale=scale != "linear",
        has_curve=bool(metrics["steps"] or metrics["epochs"]),
        stats=stats,
        histograms=_histograms(stats),
        distribution_columns=present.DISTRIBUTION_COLUMNS,
        names=present.tuned_model_names(job, view.tuned_model) if view.tuned_model else None,
        checkpoints=[(c, present.checkpoint_names(job, c)) for c in view.checkpoints],
        events=events,
        with_steps=steps,
        refresh=REFRESH_SECONDS if present.is_active(job) else None,
        test_files=new_job.offered_files(service, project_id) if view.tuned_model else [],
        evaluation_form=evaluation_form,
        max_examples=evaluation.MAX_EXAMPLES,
        max_few_shot=evaluation.MAX_FEW_SHOT,
        **context,
    )


# (before /ui/jobs/{job_id}/{action}, which would take "evaluate" as an action)
@router.post("/ui/jobs/{job_id}/evaluate")
def evaluate_job(
    request: Request,
    job_id: str,
    test_file: str = Form(""),
    examples: int = Form(evaluation.MAX_EXAMPLES),
    few_shot: int = Form(evaluation.DEFAULT_FEW_SHOT),
    project_id: str = Depends(signed_in),
    service: Service = Depends(get_service),
) -> Response:
    """The tuned model, its base and its base few-shot on a test file, the table shown on
    the job page (ui/evaluation.py says why it runs in this request); bad input is a message
    on the page."""
    form = evaluation.EvaluationForm(test_file=test_file, examples=examples, few_shot=few_shot)
    view = service.jobs.get(project_id, job_id)
    if view.tuned_model is None:  # no Evaluate card to show the message in: the error page
        raise InvalidArgument("only a succeeded job's tuned model can be evaluated", "job")
    try:
        result = evaluation.evaluate_job(service, project_id, view, form)
    except TuneforgeError as err:
        code, message = status_of(err)[0], str(err)
        return _job_page(
            request, service, project_id, job_id, form, status_code=code, evaluation_error=message
        )
    return _job_page(request, service, project_id, job_id, form, evaluation=result)


@router.post("/ui/jobs/{job_id}/evaluate/upload")
def evaluate_upload(
    job_id: str,
    file: UploadFile | None = File(None),
    project_id: str = Depends(signed_in),
    service: Service = Depends(get_service),
) -> Response:
    """Upload test data without leaving the job page: back to it with the file chosen."""
    service.jobs.get(project_id, job_id)
    if file is None or not file.filename:
        raise InvalidArgument("choose a file to upload", "file")
    row = service.files.upload(project_id, upload_filename(file.filename), file.file, "fine-tune")
    return _see_other(f"/ui/jobs/{job_id}?test_file={quote(row.id)}#evaluate")


def _events_shown(service: Service, project_id: str, job_id: str, *, with_steps: bool) -> list:
    """The newest events; without ``with_steps``, not the per-step metrics the loss curve
    already shows (they would push every message off the page)."""
    if with_steps:
        return service.jobs.events(project_id, job_id, limit=EVENTS_SHOWN, newest_first=True)
    recent = service.jobs.events(project_id, job_id, limit=EVENTS_SCANNED, newest_first=True)
    return [e for e in recent if (e.data or {}).get("kind") != "step"][:EVENTS_SHOWN]


JOB_ACTIONS: dict[str, Callable[[JobService, str, str], Any]] = {
    "cancel": JobService.cancel,
    "pause": JobService.pause,
    "resume": JobService.resume,
}


@router.post("/ui/jobs/{job_id}/{action}")
def job_action(
    job_id: str,
    action: str,
    project_id: str = Depends(signed_in),
    service: Service = Depends(get_service),
) -> Response:
    if action not in JOB_ACTIONS:
        raise NotFound(f"no job action {action!r}")
    JOB_ACTIONS[action](service.jobs, project_id, job_id)
    return _see_other(f"/ui/jobs/{job_id}")


# --- files ----------------------------------------------------------------------------------


@router.get("/ui/files")
def files_page(
    request: Request,
    after: str | None = None,
    project_id: str = Depends(signed_in),
    service: Service = Depends(get_service),
) -> Response:
    page = service.files.list(project_id, limit=FILES_PER_PAGE, after=after)
    rows = [
        (row, present.file_status(row), present.problems_summary(row.validation))
        for row in page.items
    ]
    return render(
        request,
        "files.html",
        active="files",
        rows=rows,
        next_after=page.next_after,
        purposes=PURPOSES,
        error=None,
    )


@router.post("/ui/files")
def upload(
    request: Request,
    file: UploadFile | None = File(None),
    purpose: str = Form("fine-tune"),
    project_id: str = Depends(signed_in),
    service: Service = Depends(get_service),
) -> Response:
    if file is None or not file.filename:
        raise InvalidArgument("choose a file to upload", "file")
    if purpose not in PURPOSES:
        raise InvalidArgument(f"purpose must be one of {', '.join(PURPOSES)}", "purpose")
    row = service.files.upload(project_id, upload_filename(file.filename), file.file, purpose)
    return _see_other(f"/ui/files/{row.id}")


@router.get("/ui/files/{file_id}")
def file_page(
    request: Request,
    file_id: str,
    model: str = "",
    project_id: str = Depends(signed_in),
    service: Service = Depends(get_service),
) -> Response:
    """The file's verdict, problems by line, first lines and statistics (counted with a base
    model's tokenizer, the first one unless ``model`` names another), download and delete."""
    row = service.files.get(project_id, file_id)
    base_models = [info for info in service.models.list(project_id) if info.kind == "base"]
    chosen = new_job.chosen_model(base_models, model) or (base_models[0] if base_models else None)
    form = new_job.JobForm(
        training_file=row.id,
        model=chosen.id if chosen else "",
        method=new_job.method_for_file(row),
    )
    preview = new_job.preview(service, project_id, form, chosen)
    stats_view = preview.stats_view if preview else None
    return render(
        request,
        "file.html",
        active="files",
        file=row,
        status=present.file_status(row),
        report=row.validation,
        summary=present.problems_summary(row.validation),
        preview=preview,
        base_models=base_models,
        model=form.model,
        histograms=_histograms(stats_view),
        distribution_columns=present.DISTRIBUTION_COLUMNS,
        refresh=REFRESH_SECONDS if row.status == "uploaded" else None,
    )


@router.get("/ui/files/{file_id}/content")
def file_content(
    file_id: str,
    project_id: str = Depends(signed_in),
    service: Service = Depends(get_service),
) -> Response:
    """The file as uploaded: the files API's download, signed in by the dashboard's cookie."""
    return files_api.get_file_content(file_id, project_id, service)


@router.post("/ui/files/{file_id}/delete")
def delete_file(
    file_id: str,
    project_id: str = Depends(signed_in),
    service: Service = Depends(get_service),
) -> Response:
    service.files.delete(project_id, file_id)
    return _see_other("/ui/files")


# --- models ---------------------------------------------------------------------------------


@router.get("/ui/models")
def models_page(
    request: Request,
    project_id: str = Depends(signed_in),
    service: Service = Depends(get_service),
) -> Response:
    models = service.models.list(project_id)
    tuned = [
        (info, present.tuned_model_names(info.job, info.tuned_model))
        for info in models
        if info.job is not None and info.tuned_model is not None
    ]
    return render(
        request,
        "models.html",
        active="models",
        base_models=[info for info in models if info.kind == "base"],
        tuned_models=tuned,
    )


def _model_info(service: Service, project_id: str, name: str) -> ModelInfo:
    """The catalog's entry for ``name``, or, for a checkpoint's name (which the catalog does
    not list, though every API serves it), an entry of kind "checkpoint" naming its job."""
    for info in service.models.list(project_id):
        if info.id == name:
            return info
    try:
        job = service.models.tuned_job(project_id, name)
    except NotFound:
        raise NotFound(f"model {name!r} not found") from None
    return ModelInfo(id=name, kind="checkpoint", base_model=job.base_model, job=job)


def _model_page(
    request: Request, info: ModelInfo, chat: try_it.Chat, status_code: int = 200, **context: Any
) -> Response:
    names = None
    if info.job is not None and info.tuned_model is not None:
        names = present.tuned_model_names(info.job, info.tuned_model)
    context = {
        "prompt": "",
        "error": None,
        "accepted_media": try_it.ACCEPTED_TYPES,
        "max_media_mib": try_it.CARRIED_MEDIA_BYTES // 2**20,
        **context,
    }
    return render(
        request,
        "model.html",
        status_code,
        active="models",
        info=info,
        names=names,
        chat=chat,
        **context,
    )


# (before /ui/models/{name:path}, which would take ".../download" as a model's name)
@router.get("/ui/models/{name:path}/download")
def download_model(
    name: str,
    merged: bool = False,
    project_id: str = Depends(signed_in),
    service: Service = Depends(get_service),
) -> Response:
    """A tuned model or checkpoint as a zip of the folder ``tuneforge models export`` writes:
    its adapter (or full weights) and model card; with ``merged``, a LoRA adapter merged into
    its base, a model folder any transformers loads alone."""
    info = _model_info(service, project_id, name)
    exported_target(service, project_id, info.id)
    folder = Path(tempfile.mkdtemp(prefix="tuneforge-export-"))
    try:
        export_model(service, project_id, info.id, folder / "model", merged=merged)
        stem = re.sub(r"[^\w.-]+", "_", info.id) + ("-merged" if merged else "")
        archive = shutil.make_archive(str(folder / stem), "zip", root_dir=folder / "model")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        archive,
        media_type="application/zip",
        filename=f"{stem}.zip",
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


@router.post("/ui/models/{name:path}/delete")
def delete_model(
    name: str,
    project_id: str = Depends(signed_in),
    service: Service = Depends(get_service),
) -> Response:
    """Delete a tuned model (its job and checkpoints stay): the service's models.delete."""
    service.models.delete(project_id, name)
    return _see_other("/ui/models")


@router.get("/ui/models/{name:path}")
def model_page(
    request: Request,
    name: str,
    project_id: str = Depends(signed_in),
    service: Service = Depends(get_service),
) -> Response:
    info = _model_info(service, project_id, name)
    system = try_it.training_system_instruction(service, project_id, info.job)
    chat = try_it.Chat(try_it.sides_of(info), system=system, max_tokens=DEFAULT_MAX_TOKENS)
    return _model_page(request, info, chat)


@router.post(TRY_IT_PATH)
def try_model(
    request: Request,
    name: str,
    prompt: str = Form(""),
    system: str = Form(""),
    temperature: float = Form(0.0),
    top_p: float = Form(1.0),
    max_tokens: int = Form(DEFAULT_MAX_TOKENS),
    history_user: list[str] = Form([]),
    history_tuned: list[str] = Form([]),
    history_base: list[str] = Form([]),
    history_media: list[str] = Form([]),
    history_media_name: list[str] = Form([]),
    media: UploadFile | None = File(None),
    project_id: str = Depends(signed_in),
    service: Service = Depends(get_service),
) -> Response:
    """The "Try it" form: the tuned model and its base (or a base model alone) answer the
    next turn of the conversation the form carries, with the file sent beside it; the answers
    are added to it."""
    info = _model_info(service, project_id, name)
    sides = try_it.sides_of(info)
    chat = try_it.Chat(
        sides, system=system, temperature=temperature, top_p=top_p, max_tokens=max_tokens
    )
    answers = {try_it.TUNED: history_tuned, try_it.BASE: history_base}
    try:
        chat.history = try_it.read_history(
            sides, history_user, answers, history_media, history_media_name
        )
        attached = None
        if media is not None and media.filename:  # a file input left empty sends no name
            data = media.file.read(try_it.CARRIED_MEDIA_BYTES + 1)
            limits = media_limits(service.settings)
            name_shown = upload_filename(media.filename)
            attached = try_it.attachment(
                name_shown, media.content_type or "", data, limits, chat.history, media.size
            )
        try_it.answer(service, project_id, chat, prompt, attached)
    except TuneforgeError as err:
        return _model_page(request, info, chat, status_of(err)[0], error=str(err), prompt=prompt)
    return _model_page(request, info, chat)

"""Tuning jobs: created with every check that can run before they start, then listed,
followed (events, metrics, result file), cancelled, paused and resumed."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tuneforge.config import Settings
from tuneforge.engine.methods import TuningMethod, get_method
from tuneforge.engine.quantization import refuse_unsupported_quantization
from tuneforge.engine.spec import Hyperparameters, Mode
from tuneforge.errors import Conflict, InvalidArgument, NotFound
from tuneforge.graders import parse_grader
from tuneforge.jobs.datasets import refuse_invalid_dataset
from tuneforge.jobs.media_files import media_check
from tuneforge.jobs.ranks import check_devices
from tuneforge.models.names import TunedRef, parse_model_name
from tuneforge.service.graders import check_grader
from tuneforge.service.models import ModelService
from tuneforge.storage import storage_for
from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.models import Event, File, TunedModel, TuningJob
from tuneforge.store.records import CheckpointRecord, JobRecord, TunedModelRecord
from tuneforge.store.states import TERMINAL_STATES, JobState

RESULTS_PURPOSE = "fine-tune-results"
MAX_SUFFIX_LENGTH = 64
MAX_DISPLAY_NAME_LENGTH = 200  # Vertex's limit, and the column's
MAX_DESCRIPTION_LENGTH = 4096
MAX_NAME_LENGTH = 1024  # a model name or a dataset reference
# Metadata (OpenAI's) or labels (Vertex's): Vertex allows 64 labels and OpenAI 16 pairs, so the
# larger count; OpenAI's sizes, keys up to 64 characters and values up to 512.
MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 64, 64, 512
# numpy's seed (which transformers' set_seed sets too) takes 32 bits; the column is a signed int.
MAX_SEED = 2**31 - 1


@dataclass
class JobRequest:
    """A tuning job as a surface asks for it, in tuneforge's own names."""

    base_model: str
    training_file: str
    validation_file: str | None = None
    method: str = "supervised"  # a registered tuning method
    mode: Mode = "peft"
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    display_name: str | None = None
    description: str | None = None
    suffix: str | None = None
    seed: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    teacher_model: str | None = None  # distillation: a base model or a tuned model name
    pre_tuned_model: str | None = None  # continue tuning this tuned model
    devices: int = 1  # ranks under torch.distributed: GPUs, or CPU processes (jobs/ranks.py)


@dataclass
class JobView:
    """A job with what the surfaces show beside it. Read-only: a read's job and tuned model
    are records (:mod:`tuneforge.store.records`), a change's the ORM rows it wrote."""

    job: TuningJob | JobRecord
    tuned_model: TunedModel | TunedModelRecord | None
    checkpoints: list[CheckpointRecord]
    result_file: str | None = None  # the id of a succeeded job's metrics file

    @property
    def id(self) -> str:  # a page of views continues after its last job (Page.next_after)
        return self.job.id


def checked_hyperparameters(method: TuningMethod, given: dict[str, Any]) -> Hyperparameters:
    """``given`` as the method's own hyperparameters, or a 400 naming the first field that is
    unknown to the method or out of its bounds."""
    try:
        return method.hyperparameters.model_validate(given)
    except ValidationError as err:
        first = err.errors()[0]
        # The field's name only: a union's member ("epochs.int") is no parameter.
        name = str(first["loc"][0]) if first["loc"] else "hyperparameters"
        if first["type"] == "extra_forbidden":
            known = ", ".join(method.hyperparameters.model_fields)
            message = f"unknown hyperparameter for the {method.name} method; it takes {known}"
        else:
            message = first["msg"]
        raise InvalidArgument(f"hyperparameters.{name}: {message}", name) from None


def check_bounds(request: JobRequest) -> None:
    """A 400 naming the field and its limit for any value past what a job can hold."""
    names = {
        "base_model": request.base_model,
        "teacher_model": request.teacher_model,
        "pre_tuned_model": request.pre_tuned_model,
        "training_file": request.training_file,
        "validation_file": request.validation_file,
    }
    for param, value in names.items():
        if value is not None and (len(value) > MAX_NAME_LENGTH or "\x00" in value):
            raise InvalidArgument(
                f"{param} must be at most {MAX_NAME_LENGTH} characters, without NUL bytes", param
            )
    if request.suffix is not None and (
        ":" in request.suffix or len(request.suffix) > MAX_SUFFIX_LENGTH
    ):
        raise InvalidArgument(
            f"suffix must be at most {MAX_SUFFIX_LENGTH} characters without ':' "
            "(it becomes part of the tuned model's name)",
            "suffix",
        )
    for param, value, most in (
        ("display_name", request.display_name, MAX_DISPLAY_NAME_LENGTH),
        ("description", request.description, MAX_DESCRIPTION_LENGTH),
    ):
        if value is not None and len(value) > most:
            raise InvalidArgument(f"{param} must be at most {most} characters", param)
    if request.seed is not None and not 0 <= request.seed <= MAX_SEED:
        raise InvalidArgument(f"seed must be 0 to {MAX_SEED}", "seed")
    metadata = request.metadata or {}
    if len(metadata) > MAX_METADATA_PAIRS:
        raise InvalidArgument(f"metadata holds at most {MAX_METADATA_PAIRS} pairs", "metadata")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidArgument("metadata keys and values must be strings", "metadata")
        if len(key) > MAX_METADATA_KEY or len(value) > MAX_METADATA_VALUE:
            raise InvalidArgument(
                f"metadata: keys are at most {MAX_METADATA_KEY} characters and values at most "
                f"{MAX_METADATA_VALUE}",
                "metadata",
            )


class JobService:
    def __init__(self, db: Database, settings: Settings, models: ModelService) -> None:
        self.db = db
        self.settings = settings
        self.models = models

    def create(self, project_id: str, request: JobRequest) -> JobView:
        """Check everything that can be checked before the job starts, each local dataset's
        lines included, then queue the job. The job validates again with the model's
        tokenizer (lengths) and validates a remote dataset once it has fetched it."""
        method = get_method(request.method)
        hyperparameters = checked_hyperparameters(method, request.hyperparameters)
        if request.mode not in ("peft", "full"):
            raise InvalidArgument(f"unknown tuning mode {request.mode!r}", "mode")
        refuse_unsupported_quantization(hyperparameters.quantization, request.mode)
        task = method.task
        if method.needs_teacher and not request.teacher_model:
            raise InvalidArgument(f"{method.name} needs a teacher model", "teacher_model")
        for name in method.required:
            if getattr(hyperparameters, name, None) is None:
                raise InvalidArgument(f"the {method.name} method needs {name}", name)
        if (grader := getattr(hyperparameters, "grader", None)) is not None:
            check_grader(parse_grader(grader), "grader", project_id, self.settings, self.models)
        check_bounds(request)
        check_devices(request.devices, method, hyperparameters.batch_size)
        with self.db.session() as s:
            repo.ensure_project(s, project_id)
        base_model, pre_tuned = request.base_model, request.pre_tuned_model
        if pre_tuned is None and isinstance(parse_model_name(base_model), TunedRef):
            # Tuning a tuned model continues from it (OpenAI's model="ft:...", Vertex's
            # preTunedModel): the new job starts from its weights on top of its base.
            pre_tuned = base_model
        if pre_tuned:
            base_model = self.models.tuned_job(project_id, pre_tuned).base_model
        self.models.check(project_id, base_model, "base_model")
        media = media_check(self.db, self.settings, project_id, base_model, method, request.mode)
        for param in ("training_file", "validation_file"):
            if reference := getattr(request, param):
                with self.db.session() as s:
                    refuse_invalid_dataset(
                        s, self.settings, project_id, reference, param, task, media
                    )
        if request.teacher_model:
            self.models.check(project_id, request.teacher_model, "teacher_model")
        stored = hyperparameters.model_dump(exclude_unset=True)
        extra = {"pre_tuned_model": pre_tuned} if pre_tuned else {}
        with self.db.session() as s:
            job = repo.create_job(
                s,
                project_id,
                base_model=base_model,
                training_file=request.training_file,
                validation_file=request.validation_file,
                method=request.method,
                mode=request.mode,
                hyperparameters={**stored, **extra},
                teacher_model=request.teacher_model,
                display_name=request.display_name,
                description=request.description,
                suffix=request.suffix,
                seed=request.seed if request.seed is not None else 42,
                devices=request.devices,
                metadata=request.metadata,
            )
            return JobView(job, None, [])

    def get(self, project_id: str, job_id: str) -> JobView:
        with self.db.reading() as c:
            view = self._view(c, repo.read_job(c, project_id, job_id))
        self._register_result_files(project_id, [view])
        return view

    def list(
        self, project_id: str, *, limit=20, after=None, states=None, metadata=None, search=None
    ) -> repo.Page:
        """The project's jobs, newest first; with ``metadata``, only the jobs whose metadata
        holds every one of its key-value pairs; with ``search``, only those whose id, display
        name, suffix or base model contains it."""
        with self.db.reading() as c:
            page = repo.list_jobs(
                c,
                project_id,
                limit=limit,
                after=after,
                states=states,
                metadata=metadata,
                search=search,
            )
            page.items = self._views(c, project_id, page.items)
        self._register_result_files(project_id, page.items)
        return page

    def cancel(self, project_id: str, job_id: str) -> JobView:
        with self.db.session() as s:
            view = self._view(s, repo.request_cancel(s, project_id, job_id))
        self._register_result_files(project_id, [view])
        return view

    def pause(self, project_id: str, job_id: str) -> JobView:
        with self.db.session() as s:
            view = self._view(s, repo.request_pause(s, project_id, job_id))
        self._register_result_files(project_id, [view])
        return view

    def resume(self, project_id: str, job_id: str) -> JobView:
        with self.db.session() as s:
            view = self._view(s, repo.resume_job(s, project_id, job_id))
        self._register_result_files(project_id, [view])
        return view

    def events(
        self, project_id: str, job_id: str, *, after_id=None, limit=100, newest_first=False
    ) -> list[Event]:
        with self.db.session() as s:
            repo.get_job(s, project_id, job_id)
            return list(
                repo.list_events(
                    s, job_id, after_id=after_id, limit=limit, newest_first=newest_first
                )
            )

    def metrics(self, project_id: str, job_id: str) -> dict[str, list[dict[str, Any]]]:
        """The loss curve as series: per-step training metrics and per-epoch metrics."""
        with self.db.session() as s:
            repo.get_job(s, project_id, job_id)
            return repo.metric_series(s, job_id)

    def result_file(self, project_id: str, job_id: str) -> File | None:
        """A succeeded job's metrics CSV as a file of purpose ``fine-tune-results`` (registered
        the first time it is asked for, under an id derived from the job's), else None."""
        storage = storage_for(self.settings)
        file_id = result_file_id(job_id)
        with self.db.session() as s:
            job = repo.get_job(s, project_id, job_id)
            uri = storage.job_uri(job.id, "metrics.csv")
            if job.state != JobState.SUCCEEDED or not storage.exists(uri):
                return None
            existing = s.get(File, file_id)
            if existing is not None:
                return existing
        content = storage.read_bytes(uri)
        try:
            with self.db.session() as s:
                return repo.create_file(
                    s,
                    project_id,
                    file_id=file_id,
                    filename="step_metrics.csv",
                    bytes=len(content),
                    sha256=hashlib.sha256(content).hexdigest(),
                    purpose=RESULTS_PURPOSE,
                    path=uri,
                    status="processed",
                )
        except IntegrityError:  # registered by a concurrent request meanwhile
            with self.db.session() as s:
                return repo.get_file(s, project_id, file_id)

    def find(self, project_id: str, name: str) -> JobView:
        """A job by any name a surface gives its tuned model: the job's id (``tj-...``), its
        tuned model's (``tm-...``), or its suffix (the Gemini API's ``tunedModelId``; the
        oldest job of the project with that suffix). NotFound otherwise, or in another
        project."""
        with self.db.session() as s:
            if name.startswith("tj-"):
                return self._view(s, repo.get_job(s, project_id, name))
            if name.startswith("tm-"):
                tuned = repo.get_tuned_model(s, project_id, name)
                return self._view(s, repo.get_job(s, project_id, tuned.job_id))
            owner = self._suffix_owners(s, project_id, [name]).get(name)
            if owner is None:
                raise NotFound(f"tuned model {name!r} not found")
            return self._view(s, repo.get_job(s, project_id, owner))

    def suffix_owners(self, project_id: str, suffixes: Iterable[str]) -> dict[str, str]:
        """Each suffix → the id of the oldest job of the project that has it: the job the
        suffix names as a tuned model id (:meth:`find`)."""
        with self.db.session() as s:
            return self._suffix_owners(s, project_id, suffixes)

    def describe(
        self,
        project_id: str,
        job_id: str,
        *,
        display_name: str | None = None,
        description: str | None = None,
    ) -> JobView:
        """Change a job's display name or description (None leaves one as it is), its tuned
        model's display name with it."""
        check_bounds(
            JobRequest(
                base_model="", training_file="", display_name=display_name, description=description
            )
        )
        with self.db.session() as s:
            job = repo.get_job(s, project_id, job_id)
            if display_name is not None:
                job.display_name = display_name
                if job.tuned_model is not None:
                    job.tuned_model.display_name = display_name
            if description is not None:
                job.description = description
            s.flush()
            return self._view(s, job)

    def delete(self, project_id: str, job_id: str) -> None:
        """Delete a finished job with its tuned model, checkpoints, events and files; a job
        still queued or running must be cancelled first."""
        with self.db.session() as s:
            job = repo.get_job(s, project_id, job_id)
            if job.state not in TERMINAL_STATES:
                raise Conflict(
                    f"job {job_id} is {job.state}: cancel it, and delete it once it has stopped"
                )
            # The database cascades to the tuned model, checkpoints and events.
            s.execute(delete(TuningJob).where(TuningJob.id == job.id))
        storage_for(self.settings).delete_job(job_id)

    @staticmethod
    def _suffix_owners(s, project_id: str, suffixes: Iterable[str]) -> dict[str, str]:
        wanted = list(set(suffixes))
        if not wanted:
            return {}
        rows = s.execute(
            select(TuningJob.suffix, TuningJob.id)
            .where(TuningJob.project_id == project_id, TuningJob.suffix.in_(wanted))
            .order_by(TuningJob.created_at.desc(), TuningJob.id.desc())
        )
        return dict(rows.tuples().all())  # the oldest comes last, so it wins

    def _view(self, s: Session | Connection, job: TuningJob | JobRecord) -> JobView:
        return self._views(s, job.project_id, [job])[0]

    def _views(
        self, s: Session | Connection, project_id: str, jobs: list[TuningJob] | list[JobRecord]
    ) -> list[JobView]:
        """The jobs with their tuned models (loaded with them), checkpoints and registered
        result files, in a fixed number of queries however many jobs there are."""
        # Every job's, a cancelled one's too (its epochs and its last resume point answer under
        # their checkpoint names); not a succeeded job's whose tuned model was deleted.
        listed = [j.id for j in jobs if j.tuned_model or j.state != JobState.SUCCEEDED]
        checkpoints = repo.checkpoints_by_job(s, listed)
        succeeded = {j.id: result_file_id(j.id) for j in jobs if j.state == JobState.SUCCEEDED}
        registered = repo.existing_file_ids(s, project_id, succeeded.values())
        return [
            JobView(
                job,
                job.tuned_model,
                checkpoints.get(job.id, []),
                succeeded[job.id] if succeeded.get(job.id) in registered else None,
            )
            for job in jobs
        ]

    def _register_result_files(self, project_id: str, views: list[JobView]) -> None:
        """Register the result file of each succeeded job shown without one: once its metrics
        file is there, on its first showing (outside the caller's session, which holds a
        connection)."""
        for view in views:
            if view.job.state == JobState.SUCCEEDED and view.result_file is None:
                found = self.result_file(project_id, view.job.id)
                view.result_file = found.id if found else None


def result_file_id(job_id: str) -> str:
    """The id a job's metrics file is registered under: derived from the job's, so a view
    can name it without asking for it."""
    return "file-" + hashlib.sha256(f"results/{job_id}".encode()).hexdigest()[:24]

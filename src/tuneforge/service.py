"""The operations every surface shares: one place for rules and authorization.

The Vertex router, the OpenAI router, the web UI and the CLI translate names and shapes and
call these; nothing here knows about HTTP. Every operation is scoped to a project: another
project's file, job or model raises NotFound exactly as a missing one does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from tuneforge.config import Settings
from tuneforge.data.records import Conversation
from tuneforge.data.report import to_json as report_to_json
from tuneforge.data.validate import validate_any_task
from tuneforge.engine.spec import Hyperparameters, Method, Mode
from tuneforge.errors import InvalidArgument, NotFound
from tuneforge.inference.types import ModelTarget
from tuneforge.jobs.datasets import refuse_invalid_dataset, resolve_dataset
from tuneforge.jobs.targets import model_target, tuned_checkpoint
from tuneforge.models.names import TunedRef, parse_model_name
from tuneforge.models.resolve import resolve_base_model
from tuneforge.models.tiny import TINY_MODELS
from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.models import Checkpoint, Event, File, TunedModel, TuningJob
from tuneforge.store.repo_common import MAX_PAGE_SIZE
from tuneforge.store.states import JobState

DEFAULT_PROJECT = "default"
UPLOAD_CHUNK = 1 << 20
RESULTS_PURPOSE = "fine-tune-results"
MAX_SUFFIX_LENGTH = 64


class UploadTooLarge(InvalidArgument):
    """An upload over the configured limit (HTTP 413)."""

    @classmethod
    def over(cls, limit: int) -> UploadTooLarge:
        return cls(
            f"the file is larger than the upload limit of {limit} bytes "
            "(TUNEFORGE_MAX_UPLOAD_BYTES)",
            param="file",
        )


@dataclass
class JobRequest:
    """A tuning job as a surface asks for it, in tuneforge's own names."""

    base_model: str
    training_file: str
    validation_file: str | None = None
    method: Method = "supervised"
    mode: Mode = "peft"
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    display_name: str | None = None
    description: str | None = None
    suffix: str | None = None
    seed: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    teacher_model: str | None = None  # distillation: a base model or a tuned model name
    pre_tuned_model: str | None = None  # continue tuning this tuned model


@dataclass
class JobView:
    """A job with what the surfaces show beside it."""

    job: TuningJob
    tuned_model: TunedModel | None
    checkpoints: list[Checkpoint]

    @property
    def id(self) -> str:  # a page of views continues after its last job (Page.next_after)
        return self.job.id


@dataclass(frozen=True)
class ModelInfo:
    id: str  # the name requests use
    kind: str  # "base" or "tuned"
    base_model: str
    created_at: Any = None
    tuned_model: TunedModel | None = None
    job: TuningJob | None = None  # the job that made a tuned model


class Service:
    def __init__(self, db: Database, settings: Settings, inference=None) -> None:
        self.db = db
        self.settings = settings
        self._inference = inference

    # --- API keys ---------------------------------------------------------------------
    def authenticate(self, key: str | None) -> str | None:
        if not key:
            return None
        with self.db.session() as s:
            return repo.authenticate(s, key)

    def create_key(self, project_id: str, name: str | None = None) -> tuple[Any, str]:
        with self.db.session() as s:
            repo.ensure_project(s, project_id)
            return repo.create_api_key(s, project_id, name)

    def list_keys(self, project_id: str) -> list[Any]:
        with self.db.session() as s:
            return list(repo.list_api_keys(s, project_id))

    def revoke_key(self, project_id: str, key_id: str) -> Any:
        with self.db.session() as s:
            return repo.revoke_api_key(s, project_id, key_id)

    def ensure_local_key(self) -> tuple[str, bool]:
        """The key of project ``default`` kept in the data dir (mode 0600) for the local CLI;
        made on first use. Returns the key and whether it was just created."""
        path = self.settings.data_dir / "api_key"
        if path.exists():
            key = path.read_text().strip()
            if self.authenticate(key):
                return key, False
        _, key = self.create_key(DEFAULT_PROJECT, "local")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(key + "\n")
        return key, True

    # --- files ------------------------------------------------------------------------
    def upload_file(self, project_id: str, filename: str, stream: BinaryIO, purpose: str) -> File:
        """Stream an upload to disk (refusing it past the size limit), store it immutably with
        its sha256, and validate it on arrival."""
        file_id = repo.new_file_id()
        folder = self.settings.files_dir
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{file_id}.jsonl"
        partial = target.with_suffix(".partial")
        digest, size = hashlib.sha256(), 0
        try:
            with partial.open("wb") as sink:
                while chunk := stream.read(UPLOAD_CHUNK):
                    size += len(chunk)
                    if size > self.settings.max_upload_bytes:
                        raise UploadTooLarge.over(self.settings.max_upload_bytes)
                    digest.update(chunk)
                    sink.write(chunk)
            partial.rename(target)
            target.chmod(0o444)
        finally:
            partial.unlink(missing_ok=True)
        report = validate_any_task(target)
        try:
            with self.db.session() as s:
                repo.ensure_project(s, project_id)
                return repo.create_file(
                    s,
                    project_id,
                    file_id=file_id,
                    filename=filename,
                    bytes=size,
                    sha256=digest.hexdigest(),
                    purpose=purpose,
                    path=str(target),
                    status="processed" if report.ok else "error",
                    format=report.format.value if report.format else None,
                    example_count=len(report.examples),
                    validation=report_to_json(report),
                )
        except BaseException:
            target.unlink(missing_ok=True)  # no row points at it: do not keep it
            raise

    def get_file(self, project_id: str, file_id: str) -> File:
        with self.db.session() as s:
            return repo.get_file(s, project_id, file_id)

    def list_files(self, project_id: str, *, purpose=None, limit=20, after=None) -> repo.Page:
        with self.db.session() as s:
            return repo.list_files(s, project_id, purpose=purpose, limit=limit, after=after)

    def delete_file(self, project_id: str, file_id: str) -> File:
        with self.db.session() as s:
            row = repo.delete_file(s, project_id, file_id)
        path = Path(row.path)
        # A job's result file (metrics.csv) lives in the job's folder: it is not ours to delete.
        if path.resolve().is_relative_to(self.settings.files_dir.resolve()):
            path.unlink(missing_ok=True)
        return row

    # --- jobs -------------------------------------------------------------------------
    def create_job(self, project_id: str, request: JobRequest) -> JobView:
        """Check everything that can be checked before the job starts, each local dataset's
        lines included, then queue the job. The job validates again with the model's
        tokenizer (lengths) and validates a remote dataset once it has fetched it."""
        try:
            hyperparameters = Hyperparameters(**request.hyperparameters)
        except ValidationError as err:
            first = err.errors()[0]
            # The field's name only: a union's member ("epochs.int") is no parameter.
            name = str(first["loc"][0]) if first["loc"] else "hyperparameters"
            raise InvalidArgument(f"hyperparameters.{name}: {first['msg']}", name) from None
        if request.method not in ("supervised", "preference", "distillation"):
            raise InvalidArgument(f"unknown tuning method {request.method!r}", "method")
        if request.mode not in ("peft", "full"):
            raise InvalidArgument(f"unknown tuning mode {request.mode!r}", "mode")
        task = request.method  # each method trains on the task of the same name
        if request.method == "distillation" and not request.teacher_model:
            raise InvalidArgument("distillation needs a teacher model", "teacher_model")
        if request.suffix is not None and (
            ":" in request.suffix or len(request.suffix) > MAX_SUFFIX_LENGTH
        ):
            raise InvalidArgument(
                f"suffix must be at most {MAX_SUFFIX_LENGTH} characters without ':' "
                "(it becomes part of the tuned model's name)",
                "suffix",
            )
        with self.db.session() as s:
            repo.ensure_project(s, project_id)
            refuse_invalid_dataset(
                s, self.settings, project_id, request.training_file, "training_file", task
            )
            if request.validation_file:
                refuse_invalid_dataset(
                    s, self.settings, project_id, request.validation_file, "validation_file", task
                )
        base_model, pre_tuned = request.base_model, request.pre_tuned_model
        if pre_tuned is None and isinstance(parse_model_name(base_model), TunedRef):
            # Tuning a tuned model continues from it (OpenAI's model="ft:...", Vertex's
            # preTunedModel): the new job starts from its weights on top of its base.
            pre_tuned = base_model
        if pre_tuned:
            base_model = self.tuned_model_base(project_id, pre_tuned)
        self.check_model(project_id, base_model, "base_model")
        if request.teacher_model:
            self.check_model(project_id, request.teacher_model, "teacher_model")
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
                metadata=request.metadata,
            )
            return JobView(job, None, [])

    def get_job(self, project_id: str, job_id: str) -> JobView:
        with self.db.session() as s:
            return self._view(s, repo.get_job(s, project_id, job_id))

    def list_jobs(
        self, project_id: str, *, limit=20, after=None, states=None, metadata=None
    ) -> repo.Page:
        """The project's jobs, newest first; with ``metadata``, only the jobs whose metadata
        holds every one of its key-value pairs."""
        with self.db.session() as s:
            if metadata:
                page = _filtered_jobs(s, project_id, limit, after, states, dict(metadata))
            else:
                page = repo.list_jobs(s, project_id, limit=limit, after=after, states=states)
            page.items = [self._view(s, job) for job in page.items]
            return page

    def cancel_job(self, project_id: str, job_id: str) -> JobView:
        with self.db.session() as s:
            return self._view(s, repo.request_cancel(s, project_id, job_id))

    def pause_job(self, project_id: str, job_id: str) -> JobView:
        with self.db.session() as s:
            return self._view(s, repo.request_pause(s, project_id, job_id))

    def resume_job(self, project_id: str, job_id: str) -> JobView:
        with self.db.session() as s:
            return self._view(s, repo.resume_job(s, project_id, job_id))

    def list_events(
        self, project_id: str, job_id: str, *, after_id=None, limit=100, newest_first=False
    ) -> list[Event]:
        with self.db.session() as s:
            repo.get_job(s, project_id, job_id)
            return list(
                repo.list_events(
                    s, job_id, after_id=after_id, limit=limit, newest_first=newest_first
                )
            )

    def job_metrics(self, project_id: str, job_id: str) -> dict[str, list[dict[str, Any]]]:
        """The loss curve as series: per-step training metrics and per-epoch metrics."""
        with self.db.session() as s:
            repo.get_job(s, project_id, job_id)
            return repo.metric_series(s, job_id)

    def result_file(self, project_id: str, job_id: str) -> File | None:
        """A succeeded job's metrics CSV as a file of purpose ``fine-tune-results`` (registered
        the first time it is asked for, under an id derived from the job's), else None."""
        path = self.job_dir(job_id) / "metrics.csv"
        file_id = "file-" + hashlib.sha256(f"results/{job_id}".encode()).hexdigest()[:24]
        with self.db.session() as s:
            job = repo.get_job(s, project_id, job_id)
            if job.state != JobState.SUCCEEDED or not path.is_file():
                return None
            existing = s.get(File, file_id)
            if existing is not None:
                return existing
        content = path.read_bytes()
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
                    path=str(path),
                    status="processed",
                )
        except IntegrityError:  # registered by a concurrent request meanwhile
            with self.db.session() as s:
                return repo.get_file(s, project_id, file_id)

    def _view(self, s, job: TuningJob) -> JobView:
        tuned = s.query(TunedModel).filter_by(job_id=job.id).one_or_none()
        return JobView(job, tuned, list(repo.list_checkpoints(s, job.id)))

    # --- models -----------------------------------------------------------------------
    def check_model(self, project_id: str, name: str, param: str) -> None:
        """A base model that resolves, or a tuned model of this project."""
        reference = parse_model_name(name)
        try:
            if isinstance(reference, TunedRef):
                self.model_target(project_id, name)
            else:
                resolve_base_model(reference, self.settings)
        except NotFound as err:
            raise InvalidArgument(f"{param}: {err}", param) from None

    def tuned_model_base(self, project_id: str, name: str) -> str:
        return self.tuned_job(project_id, name).base_model

    def tuned_job(self, project_id: str, name: str) -> TuningJob:
        """The job that produced the tuned model (or checkpoint) called ``name``."""
        with self.db.session() as s:
            job, _ = tuned_checkpoint(s, project_id, name)
            return job

    def list_models(self, project_id: str) -> list[ModelInfo]:
        models = [ModelInfo(id=name, kind="base", base_model=name) for name in TINY_MODELS]
        for root in [self.settings.models_dir, *self.settings.model_roots]:
            if root.is_dir():
                models += [
                    ModelInfo(id=p.name, kind="base", base_model=p.name)
                    for p in sorted(root.iterdir())
                    if (p / "config.json").is_file() and f"tuneforge/{p.name}" not in TINY_MODELS
                ]
        with self.db.session() as s:
            page = repo.list_tuned_models(s, project_id, limit=1000)
            for tuned in page.items:
                models.append(
                    ModelInfo(
                        id=tuned.id,
                        kind="tuned",
                        base_model=tuned.base_model,
                        created_at=tuned.created_at,
                        tuned_model=tuned,
                        job=s.get(TuningJob, tuned.job_id),
                    )
                )
        return models

    def model_target(self, project_id: str, name: str) -> ModelTarget:
        """What inference loads for a model name: a base model, or a tuned model's checkpoint."""
        with self.db.session() as s:
            return model_target(s, self.settings, project_id, name)

    # --- inference --------------------------------------------------------------------
    @property
    def inference(self):
        if self._inference is None:
            from tuneforge.inference import make_backend

            self._inference = make_backend(self.settings)
        return self._inference

    def generate(self, project_id: str, model: str, prompt: Conversation, params):
        return self.inference.generate(self.model_target(project_id, model), prompt, params)

    def stream(self, project_id: str, model: str, prompt: Conversation, params):
        return self.inference.stream(self.model_target(project_id, model), prompt, params)

    # --- local data ---------------------------------------------------------------------
    def dataset_path(self, project_id: str, reference: str, param: str) -> Path:
        with self.db.session() as s:
            return resolve_dataset(s, self.settings, project_id, reference, param)

    def job_dir(self, job_id: str) -> Path:
        return self.settings.job_dir(job_id)


def _filtered_jobs(s, project_id: str, limit: int, after, states, metadata: dict) -> repo.Page:
    """A page of the jobs whose metadata matches, walking the unfiltered list in order."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"page size must be 1 to {MAX_PAGE_SIZE}", param="limit")
    matched: list[TuningJob] = []
    while len(matched) <= limit:
        page = repo.list_jobs(s, project_id, limit=MAX_PAGE_SIZE, after=after, states=states)
        matched += [
            job
            for job in page.items
            if all((job.user_metadata or {}).get(k) == v for k, v in metadata.items())
        ]
        if not page.has_more:
            break
        after = page.items[-1].id
    return repo.Page(items=matched[:limit], has_more=len(matched) > limit)

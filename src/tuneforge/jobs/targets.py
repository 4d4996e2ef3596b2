"""A model name → what loads it: a base model's source, or a tuned model's checkpoint folder.

Both the service (serving, checks at job creation) and a job's runner (the checkpoint a job
continues from, a distillation's teacher) look names up here, so neither reaches into the other.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from tuneforge.config import Settings
from tuneforge.engine.methods import get_method
from tuneforge.errors import NotFound, TuneforgeError
from tuneforge.inference.types import ModelTarget
from tuneforge.models.names import TunedRef, parse_model_name
from tuneforge.models.resolve import resolve_base_model
from tuneforge.storage import storage_for
from tuneforge.store import repo
from tuneforge.store.models import Checkpoint, TunedModel, TuningJob
from tuneforge.store.states import JobState


def model_target(session: Session, settings: Settings, project_id: str, name: str) -> ModelTarget:
    """A base model, or a tuned model's checkpoint (its default one unless the name picks
    another); NotFound for an unknown name or another project's tuned model."""
    reference = parse_model_name(name)
    if not isinstance(reference, TunedRef):
        try:
            resolved = resolve_base_model(reference, settings)
        except TuneforgeError as err:
            raise NotFound(f"model {name!r} not found: {err}") from None
        return ModelTarget(name=name, base_source=resolved.source)
    job, checkpoint = tuned_checkpoint(session, project_id, name)
    base = resolve_base_model(job.base_model, settings)
    path = storage_for(settings).local_path(checkpoint.path)
    weights = {"weights_path" if job.mode == "full" else "adapter_path": path}
    return ModelTarget(
        name=name,
        base_source=base.source,
        scores_only=get_method(job.method).scores_only,
        **weights,
    )


def tuned_checkpoint(session: Session, project_id: str, name: str) -> tuple[TuningJob, Checkpoint]:
    """The job and checkpoint a tuned model's name stands for."""
    reference = parse_model_name(name)
    job, checkpoint = _tuned_job(session, project_id, name, reference)
    if checkpoint is not None:
        return job, checkpoint
    checkpoints = list(repo.list_checkpoints(session, job.id))
    if reference.epoch is not None or reference.step is not None:
        for checkpoint in checkpoints:
            if checkpoint.epoch == reference.epoch or checkpoint.step == reference.step:
                return job, checkpoint
        raise NotFound(f"tuned model {name!r}: no such checkpoint")
    default = next((c for c in checkpoints if c.is_default), None)
    if default is None:
        raise NotFound(f"tuned model {name!r} is not ready: its job has not succeeded")
    return job, default


def tuned_model(session: Session, project_id: str, name: str) -> TunedModel:
    """The tuned model (not one of its checkpoints) called ``name``: NotFound for a missing
    one and for another project's, alike."""
    job, _ = _tuned_job(session, project_id, name, parse_model_name(name))
    if job.tuned_model is None:  # a job that has not succeeded
        raise NotFound(f"tuned model {name!r} not found")
    return job.tuned_model


def _tuned_job(
    session: Session, project_id: str, name: str, reference: TunedRef | str
) -> tuple[TuningJob, Checkpoint | None]:
    """The job behind a tuned model's name, and the checkpoint when the name is a checkpoint id.
    A deleted tuned model's names all answer as missing ones."""
    if not isinstance(reference, TunedRef):
        raise NotFound(f"{name!r} is not a tuned model")
    missing = NotFound(f"tuned model {name!r} not found")
    checkpoint = None
    if reference.checkpoint_id:
        checkpoint = session.get(Checkpoint, reference.checkpoint_id)
        if checkpoint is None:
            raise missing
        job_id = checkpoint.job_id
    elif reference.tuned_model_id:
        try:
            job_id = repo.get_tuned_model(session, project_id, reference.tuned_model_id).job_id
        except NotFound:
            raise missing from None
    else:
        job_id = reference.job_id
    try:
        job = repo.get_job(session, project_id, job_id)
    except NotFound:  # another project's: answered as a missing one, its job id unsaid
        raise missing from None
    # A job that succeeded made its tuned model in the same transaction (jobs/runner.py):
    # without one, the model was deleted.
    if job.state == JobState.SUCCEEDED and job.tuned_model is None:
        raise missing
    return job, checkpoint

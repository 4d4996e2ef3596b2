"""What a job produces: checkpoints, and the tuned model that serves one of them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update
from sqlalchemy.orm import Session

from tuneforge.errors import Conflict, NotFound
from tuneforge.store.models import Checkpoint, TunedModel, TuningJob
from tuneforge.store.records import CheckpointRecord, RecordShape
from tuneforge.store.repo_common import DEFAULT_PAGE_SIZE, Page, get_scoped, paginate
from tuneforge.store.repo_jobs import load_job


def add_checkpoint(
    session: Session,
    job_id: str,
    *,
    epoch: int,
    step: int,
    path: str,
    metrics: dict[str, Any] | None = None,
    is_default: bool = False,
) -> Checkpoint:
    """Record a saved checkpoint; ``is_default`` makes it the one the tuned model serves."""
    load_job(session, job_id)
    duplicate = session.scalar(
        select(Checkpoint.id).where(
            Checkpoint.job_id == job_id, Checkpoint.epoch == epoch, Checkpoint.step == step
        )
    )
    if duplicate is not None:
        raise Conflict(f"job {job_id} already has a checkpoint at epoch {epoch}, step {step}")
    checkpoint = Checkpoint(
        job_id=job_id, epoch=epoch, step=step, path=path, metrics=metrics or {}, is_default=False
    )
    session.add(checkpoint)
    session.flush()
    if is_default:
        set_default_checkpoint(session, job_id, checkpoint.id)
    return checkpoint


def list_checkpoints(session: Session, job_id: str) -> list[Checkpoint]:
    """A job's checkpoints in training order."""
    return list(
        session.scalars(
            select(Checkpoint)
            .where(Checkpoint.job_id == job_id)
            .order_by(Checkpoint.epoch, Checkpoint.step)
        )
    )


CHECKPOINT_RECORD = RecordShape(Checkpoint, CheckpointRecord)
_CHECKPOINTS = Checkpoint.__table__.c
_JOBS_CHECKPOINTS = (
    select(*CHECKPOINT_RECORD.columns)
    .where(_CHECKPOINTS.job_id.in_(bindparam("job_ids", expanding=True)))
    .order_by(_CHECKPOINTS.job_id, _CHECKPOINTS.epoch, _CHECKPOINTS.step)
)


def checkpoints_by_job(
    session: Session | Connection, job_ids: Iterable[str]
) -> dict[str, list[CheckpointRecord]]:
    """The checkpoints of each of these jobs, in training order, as read-only records, in one
    query (a job without any is missing from the answer)."""
    found: dict[str, list[CheckpointRecord]] = {}
    ids = list(job_ids)
    if not ids:
        return found
    for checkpoint in CHECKPOINT_RECORD.load(session, _JOBS_CHECKPOINTS, {"job_ids": ids}):
        found.setdefault(checkpoint.job_id, []).append(checkpoint)
    return found


def get_checkpoint(session: Session, job_id: str, checkpoint_id: str) -> Checkpoint:
    checkpoint = session.get(Checkpoint, checkpoint_id)
    if checkpoint is None or checkpoint.job_id != job_id:
        raise NotFound(f"checkpoint {checkpoint_id!r} not found")
    return checkpoint


def set_default_checkpoint(session: Session, job_id: str, checkpoint_id: str) -> Checkpoint:
    """Make this checkpoint the job's default (and its tuned model's, if there is one)."""
    checkpoint = get_checkpoint(session, job_id, checkpoint_id)
    session.execute(
        update(Checkpoint)
        .where(Checkpoint.job_id == job_id)
        .values(is_default=Checkpoint.id == checkpoint_id)
        .execution_options(synchronize_session="fetch")
    )
    session.execute(
        update(TunedModel)
        .where(TunedModel.job_id == job_id)
        .values(default_checkpoint_id=checkpoint_id)
        .execution_options(synchronize_session="fetch")
    )
    return checkpoint


def default_checkpoint(session: Session, job_id: str) -> Checkpoint | None:
    return session.scalar(
        select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.is_default.is_(True))
    )


def create_tuned_model(
    session: Session,
    job_id: str,
    *,
    display_name: str | None = None,
    default_checkpoint_id: str | None = None,
) -> TunedModel:
    """The job's tuned model, serving ``default_checkpoint_id`` (else the job's default
    checkpoint). A job has at most one."""
    job: TuningJob = load_job(session, job_id)
    if session.scalar(select(TunedModel.id).where(TunedModel.job_id == job_id)) is not None:
        raise Conflict(f"job {job_id} already has a tuned model")
    if default_checkpoint_id is not None:
        set_default_checkpoint(session, job_id, default_checkpoint_id)
    else:
        current_default = default_checkpoint(session, job_id)
        default_checkpoint_id = current_default.id if current_default else None
    model = TunedModel(
        job_id=job_id,
        project_id=job.project_id,
        base_model=job.base_model,
        display_name=display_name if display_name is not None else job.display_name,
        default_checkpoint_id=default_checkpoint_id,
    )
    session.add(model)
    session.flush()
    session.refresh(job, ["tuned_model"])
    return model


def get_tuned_model(session: Session, project_id: str, model_id: str) -> TunedModel:
    return get_scoped(session, TunedModel, project_id, model_id, "tuned model")


def delete_tuned_model(session: Session, project_id: str, model_id: str) -> None:
    """Delete a tuned model; its job, checkpoints and their files stay. One statement, so of two
    concurrent deletes the second is NotFound."""
    deleted = session.execute(
        delete(TunedModel)
        .where(TunedModel.id == model_id, TunedModel.project_id == project_id)
        .execution_options(synchronize_session="fetch")
    )
    if deleted.rowcount == 0:
        raise NotFound(f"tuned model {model_id!r} not found")


def list_tuned_models(
    session: Session,
    project_id: str,
    *,
    limit: int = DEFAULT_PAGE_SIZE,
    after: str | None = None,
) -> Page[TunedModel]:
    query = select(TunedModel).where(TunedModel.project_id == project_id)
    return paginate(session, query, TunedModel, limit=limit, after=after)

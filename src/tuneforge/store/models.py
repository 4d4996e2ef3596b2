"""ORM models: the tables of DESIGN.md's resource table.

JSON columns are replaced, never mutated in place (in-place changes are not tracked).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from tuneforge.store.states import (
    EventLevel,
    EventType,
    JobState,
    Mode,
    RequestedAction,
    SubState,
)
from tuneforge.store.types import (
    BigIntegerPK,
    EnumText,
    NullableJSON,
    UtcDateTime,
    new_id,
    utcnow,
)

# Named constraints, so migrations (and SQLite batch mode) can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(64)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ApiKey(Base):
    """An API key. Only a SHA-256 of the secret is stored: keys are 256-bit random tokens, so a
    fast hash cannot be brute-forced and a slow password hash would only slow every request."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=lambda: new_id("key"))
    project_id: Mapped[str] = mapped_column(ID, ForeignKey("projects.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class File(Base):
    __tablename__ = "files"
    __table_args__ = (Index("ix_files_project_id_created_at", "project_id", "created_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=lambda: new_id("file", 24))
    project_id: Mapped[str] = mapped_column(ID, ForeignKey("projects.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(512))
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)
    format: Mapped[str | None] = mapped_column(String(32))
    example_count: Mapped[int | None] = mapped_column(Integer)
    validation: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class TuningJob(Base):
    __tablename__ = "tuning_jobs"
    __table_args__ = (
        Index("ix_tuning_jobs_project_id_created_at", "project_id", "created_at"),
        # Claiming takes the oldest queued job: FIFO by (created_at, id).
        Index("ix_tuning_jobs_state_created_at", "state", "created_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=lambda: new_id("tj"))
    project_id: Mapped[str] = mapped_column(ID, ForeignKey("projects.id", ondelete="CASCADE"))
    display_name: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    base_model: Mapped[str] = mapped_column(Text)
    # A registered tuning method's name (engine/methods/): the service checks it, so the store
    # takes new methods without a migration.
    method: Mapped[str] = mapped_column(String(32))
    mode: Mapped[Mode] = mapped_column(EnumText(Mode))
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # as asked
    # Every value the job trains with, set once when it starts (auto and defaults resolved).
    resolved_hyperparameters: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    # A file id (file-...) or a dataset path / URI the service has already allowed.
    training_file: Mapped[str] = mapped_column(Text)
    validation_file: Mapped[str | None] = mapped_column(Text)
    teacher_model: Mapped[str | None] = mapped_column(Text)
    suffix: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int | None] = mapped_column(Integer)
    # How many devices (GPUs, or CPU processes) the job trains on, one rank on each.
    devices: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # "metadata" is reserved on declarative classes, hence the attribute name.
    user_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)

    state: Mapped[JobState] = mapped_column(EnumText(JobState), default=JobState.QUEUED)
    sub_state: Mapped[SubState | None] = mapped_column(EnumText(SubState))
    requested_action: Mapped[RequestedAction | None] = mapped_column(EnumText(RequestedAction))

    completed_steps: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    completed_epochs: Mapped[int] = mapped_column(Integer, default=0)
    total_epochs: Mapped[int | None] = mapped_column(Integer)
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger)
    disk_bytes: Mapped[int | None] = mapped_column(BigInteger)  # the job folder's, as last saved
    estimated_finish: Mapped[datetime | None] = mapped_column(UtcDateTime)
    data_stats: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    # {"code": ..., "message": ..., "param": ...} when the job failed.
    error: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)

    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    # The executor's opaque name for the job's runner (``tuneforge.jobs.executor``): any
    # scheduler can ask its executor whether that runner is alive.
    runner_handle: Mapped[str | None] = mapped_column(Text)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    # Loaded with the job: every view of a job names its tuned model.
    tuned_model: Mapped[TunedModel | None] = relationship(
        back_populates="job", lazy="selectin", uselist=False
    )


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "epoch", "step"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=lambda: new_id("ckpt"))
    job_id: Mapped[str] = mapped_column(ID, ForeignKey("tuning_jobs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    path: Mapped[str] = mapped_column(Text)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class TunedModel(Base):
    __tablename__ = "tuned_models"
    __table_args__ = (Index("ix_tuned_models_project_id_created_at", "project_id", "created_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=lambda: new_id("tm"))
    job_id: Mapped[str] = mapped_column(
        ID, ForeignKey("tuning_jobs.id", ondelete="CASCADE"), unique=True
    )
    project_id: Mapped[str] = mapped_column(ID, ForeignKey("projects.id", ondelete="CASCADE"))
    base_model: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str | None] = mapped_column(String(200))
    default_checkpoint_id: Mapped[str | None] = mapped_column(
        ID, ForeignKey("checkpoints.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    job: Mapped[TuningJob] = relationship(back_populates="tuned_model", lazy="raise")


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntegerPK, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ID, ForeignKey("tuning_jobs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    level: Mapped[EventLevel] = mapped_column(EnumText(EventLevel), default=EventLevel.INFO)
    type: Mapped[EventType] = mapped_column(EnumText(EventType), default=EventType.MESSAGE)
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)

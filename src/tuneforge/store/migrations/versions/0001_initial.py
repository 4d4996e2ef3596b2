"""Initial schema: projects, API keys, files, tuning jobs, checkpoints, tuned models, events.

Revision ID: 0001
Revises:
Create Date: 2026-11-21

Written out with plain SQLAlchemy types (not the models' type decorators) so this revision
keeps meaning the same schema whatever later happens to the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=64)
ENUM = sa.String(length=32)


def timestamp(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", ID, nullable=False),
        timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )

    op.create_table(
        "api_keys",
        sa.Column("id", ID, nullable=False),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        timestamp("created_at"),
        timestamp("last_used_at", nullable=True),
        timestamp("revoked_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_api_keys_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_keys_secret_hash")),
    )
    op.create_index(op.f("ix_api_keys_prefix"), "api_keys", ["prefix"])

    op.create_table(
        "files",
        sa.Column("id", ID, nullable=False),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("filename", sa.String(length=512), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("format", sa.String(length=32), nullable=True),
        sa.Column("example_count", sa.Integer(), nullable=True),
        sa.Column("validation", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_files_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
    )
    op.create_index("ix_files_project_id_created_at", "files", ["project_id", "created_at"])

    op.create_table(
        "tuning_jobs",
        sa.Column("id", ID, nullable=False),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("base_model", sa.Text(), nullable=False),
        sa.Column("method", ENUM, nullable=False),
        sa.Column("mode", ENUM, nullable=False),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("training_file", sa.Text(), nullable=False),
        sa.Column("validation_file", sa.Text(), nullable=True),
        sa.Column("teacher_model", sa.Text(), nullable=True),
        sa.Column("suffix", sa.String(length=64), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("state", ENUM, nullable=False),
        sa.Column("sub_state", ENUM, nullable=True),
        sa.Column("requested_action", ENUM, nullable=True),
        sa.Column("completed_steps", sa.Integer(), nullable=False),
        sa.Column("total_steps", sa.Integer(), nullable=True),
        sa.Column("completed_epochs", sa.Integer(), nullable=False),
        sa.Column("total_epochs", sa.Integer(), nullable=True),
        sa.Column("trained_tokens", sa.BigInteger(), nullable=True),
        timestamp("estimated_finish", nullable=True),
        sa.Column("data_stats", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("runner_pid", sa.Integer(), nullable=True),
        timestamp("heartbeat_at", nullable=True),
        timestamp("created_at"),
        timestamp("started_at", nullable=True),
        timestamp("ended_at", nullable=True),
        timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_tuning_jobs_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tuning_jobs")),
    )
    op.create_index(
        "ix_tuning_jobs_project_id_created_at", "tuning_jobs", ["project_id", "created_at"]
    )
    op.create_index("ix_tuning_jobs_state_created_at", "tuning_jobs", ["state", "created_at"])

    op.create_table(
        "checkpoints",
        sa.Column("id", ID, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["tuning_jobs.id"],
            name=op.f("fk_checkpoints_job_id_tuning_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkpoints")),
        sa.UniqueConstraint(
            "job_id", "epoch", "step", name=op.f("uq_checkpoints_job_id_epoch_step")
        ),
    )

    op.create_table(
        "tuned_models",
        sa.Column("id", ID, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("base_model", sa.Text(), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("default_checkpoint_id", ID, nullable=True),
        timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["default_checkpoint_id"],
            ["checkpoints.id"],
            name=op.f("fk_tuned_models_default_checkpoint_id_checkpoints"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["tuning_jobs.id"],
            name=op.f("fk_tuned_models_job_id_tuning_jobs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_tuned_models_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tuned_models")),
        sa.UniqueConstraint("job_id", name=op.f("uq_tuned_models_job_id")),
    )
    op.create_index(
        "ix_tuned_models_project_id_created_at", "tuned_models", ["project_id", "created_at"]
    )

    op.create_table(
        "events",
        # BIGINT on PostgreSQL; SQLite only autoincrements a column declared INTEGER.
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("job_id", ID, nullable=False),
        timestamp("created_at"),
        sa.Column("level", ENUM, nullable=False),
        sa.Column("type", ENUM, nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["tuning_jobs.id"],
            name=op.f("fk_events_job_id_tuning_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_job_id_id", "events", ["job_id", "id"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("tuned_models")
    op.drop_table("checkpoints")
    op.drop_table("tuning_jobs")
    op.drop_table("files")
    op.drop_table("api_keys")
    op.drop_table("projects")

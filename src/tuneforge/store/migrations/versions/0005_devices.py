"""Tuning jobs say how many devices they train on.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

``devices`` is the number of ranks a job's runner starts under torch.distributed (GPUs, or CPU
processes); every job before this revision trained as one process.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tuning_jobs") as batch:
        batch.add_column(
            sa.Column("devices", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )


def downgrade() -> None:
    with op.batch_alter_table("tuning_jobs") as batch:
        batch.drop_column("devices")

"""Tuning jobs record the disk their folder takes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

``disk_bytes`` is set by the job's runner after each save and once the run ends (checkpoints,
resume point, logs); jobs that ran before this revision have none.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tuning_jobs") as batch:
        batch.add_column(sa.Column("disk_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tuning_jobs") as batch:
        batch.drop_column("disk_bytes")

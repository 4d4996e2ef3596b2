"""Tuning jobs keep the hyperparameters they train with, resolved once when they start.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

``hyperparameters`` stays what was asked ("auto" where nothing was); ``resolved_hyperparameters``
is every value made concrete (epochs and batch size for the dataset, the default learning rate
for the model), which both APIs show once the job has started. Jobs that started before this
revision have none and show what was asked, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tuning_jobs") as batch:
        batch.add_column(sa.Column("resolved_hyperparameters", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tuning_jobs") as batch:
        batch.drop_column("resolved_hyperparameters")

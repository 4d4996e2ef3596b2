"""Tuning jobs name their runner by an executor's opaque handle, not by a pid.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

``runner_pid`` only meant something to a scheduler on the same host that could also read the
claimant's ``host:pid`` out of ``worker_id``. ``runner_handle`` is whatever the executor that
started the runner returned, and any scheduler asks its own executor about it.

The data is kept, not dropped: an active job's ``worker_id`` (``host:pid``, what every
scheduler claimed with) and ``runner_pid`` become the subprocess executor's handle
``subprocess://host/scheduler-pid/runner-pid`` (``subprocess://host/scheduler-pid`` when no
runner pid was recorded yet). A server upgraded in place was stopped first, and its runners
died with it; converted handles let the new scheduler see that at once and requeue those jobs
on its first round, where a missing handle would leave each one to the stale-heartbeat
timeout. Any other ``worker_id`` gets no handle, and the heartbeat decides as before.

The handle format is written out here rather than imported from the executor, so this
revision keeps meaning the same data whatever later happens to that code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE_STATES = ("JOB_STATE_RUNNING", "JOB_STATE_CANCELLING")
WORKER_ID = re.compile(r"^([^/:]+):(\d+)$")  # socket.gethostname():os.getpid()
SUBPROCESS_HANDLE = re.compile(r"^subprocess://[^/]+/\d+/(\d+)$")

jobs = sa.table(
    "tuning_jobs",
    sa.column("id", sa.String),
    sa.column("state", sa.String),
    sa.column("worker_id", sa.String),
    sa.column("runner_pid", sa.Integer),
    sa.column("runner_handle", sa.Text),
)


def upgrade() -> None:
    with op.batch_alter_table("tuning_jobs") as batch:
        batch.add_column(sa.Column("runner_handle", sa.Text(), nullable=True))
    connection = op.get_bind()
    active = connection.execute(
        sa.select(jobs.c.id, jobs.c.worker_id, jobs.c.runner_pid).where(
            jobs.c.state.in_(ACTIVE_STATES)
        )
    ).all()
    for job_id, worker_id, runner_pid in active:
        claimant = WORKER_ID.match(worker_id or "")
        if claimant is None:
            continue
        host, scheduler_pid = claimant.groups()
        runner = f"/{runner_pid}" if runner_pid is not None else ""
        connection.execute(
            sa.update(jobs)
            .where(jobs.c.id == job_id)
            .values(runner_handle=f"subprocess://{host}/{scheduler_pid}{runner}")
        )
    with op.batch_alter_table("tuning_jobs") as batch:
        batch.drop_column("runner_pid")


def downgrade() -> None:
    with op.batch_alter_table("tuning_jobs") as batch:
        batch.add_column(sa.Column("runner_pid", sa.Integer(), nullable=True))
    connection = op.get_bind()
    named = connection.execute(
        sa.select(jobs.c.id, jobs.c.runner_handle).where(jobs.c.runner_handle.is_not(None))
    ).all()
    for job_id, handle in named:
        if runner := SUBPROCESS_HANDLE.match(handle):
            connection.execute(
                sa.update(jobs).where(jobs.c.id == job_id).values(runner_pid=int(runner[1]))
            )
    with op.batch_alter_table("tuning_jobs") as batch:
        batch.drop_column("runner_handle")

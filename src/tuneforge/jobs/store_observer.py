"""The engine's observer inside a job: progress, metrics, events and checkpoints go to the
store, and the job's requested action (cancel / pause) comes back from it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tuneforge.engine.memory_plan import MemoryPlan
from tuneforge.engine.observer import (
    CheckpointInfo,
    EpochMetrics,
    StepMetrics,
    StopRequest,
    TrainingPlan,
    TuningObserver,
)
from tuneforge.jobs.memory_share import PLAN_FILE, write_plan
from tuneforge.storage import Storage
from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.states import RequestedAction, SubState

# How often the runner asks the store whether it should stop: often enough that a cancel takes
# effect within a second, rarely enough that tiny models do not spend their time on queries.
POLL_INTERVAL_S = 0.25
ENGINE_STOP: dict[RequestedAction, StopRequest] = {
    RequestedAction.CANCEL: "cancel",
    RequestedAction.PAUSE: "pause",
    RequestedAction.REQUEUE: "pause",
}


class StoreObserver(TuningObserver):
    def __init__(self, db: Database, job_id: str, worker_id: str | None, storage: Storage) -> None:
        self.db = db
        self.storage = storage  # a checkpoint's row holds the URI it publishes
        self.job_id = job_id
        self.worker_id = worker_id
        self.plan: TrainingPlan | None = None
        # Called with the plan before it is recorded: the runner records the dataset's
        # statistics then, with the epochs and batch size the engine resolved.
        self.before_start: Callable[[TrainingPlan], None] | None = None
        self._last_poll = 0.0
        self._requested: StopRequest | None = None

    def on_start(self, plan: TrainingPlan) -> None:
        self.plan = plan
        if self.before_start is not None:
            self.before_start(plan)
        with self.db.session() as s:
            repo.update_progress(
                s,
                self.job_id,
                worker_id=self.worker_id,
                sub_state=SubState.TUNING,
                total_steps=plan.total_steps,
                total_epochs=plan.epochs,
                resolved_hyperparameters=plan.hyperparameters,
            )
            repo.record_event(
                s,
                self.job_id,
                f"tuning {plan.train_examples} examples for {plan.epochs} epochs "
                f"({plan.total_steps} steps)",
                data={"hyperparameters": plan.hyperparameters},
            )

    def on_step(self, metrics: StepMetrics) -> None:
        finish = None
        if metrics.eta_s is not None:
            finish = datetime.now(UTC) + timedelta(seconds=metrics.eta_s)
        with self.db.session() as s:
            repo.update_progress(
                s,
                self.job_id,
                worker_id=self.worker_id,
                completed_steps=metrics.step,
                completed_epochs=int(metrics.epoch),
                estimated_finish=finish,
            )
            repo.record_event(
                s,
                self.job_id,
                f"Step {metrics.step}/{metrics.total_steps}: training loss={metrics.loss:.4f}",
                type="metrics",
                data={"kind": "step", "metrics": metrics.as_dict()},
            )

    def on_epoch(self, metrics: EpochMetrics) -> None:
        valid = f", validation loss={metrics.valid_loss:.4f}" if metrics.valid_loss else ""
        with self.db.session() as s:
            repo.update_progress(
                s, self.job_id, worker_id=self.worker_id, completed_epochs=metrics.epoch
            )
            repo.record_event(
                s,
                self.job_id,
                f"Epoch {metrics.epoch} done: training loss={metrics.train_loss:.4f}{valid}",
                type="metrics",
                data={"kind": "epoch", "metrics": metrics.as_dict()},
            )

    def on_checkpoint(self, checkpoint: CheckpointInfo) -> None:
        if checkpoint.kind == "resume":
            self.storage.publish(checkpoint.path)  # so a run on another machine resumes from it
            self.on_event(f"saved a resume point at step {checkpoint.step}")
            return
        if checkpoint.kind == "partial":
            message = (
                f"checkpoint kept: the work up to step {checkpoint.step} (the last resume point "
                "before the cancel)"
            )
        else:
            message = f"checkpoint saved: epoch {checkpoint.epoch} (step {checkpoint.step})"
        with self.db.session() as s:
            if not any(c.step == checkpoint.step for c in repo.list_checkpoints(s, self.job_id)):
                repo.add_checkpoint(
                    s,
                    self.job_id,
                    epoch=checkpoint.epoch,
                    step=checkpoint.step,
                    path=self.storage.publish(checkpoint.path),
                    metrics=checkpoint.metrics,
                )
            repo.record_event(
                s,
                self.job_id,
                message,
                data={"epoch": checkpoint.epoch, "step": checkpoint.step, "kind": checkpoint.kind},
            )

    def on_disk_use(self, total_bytes: int) -> None:
        with self.db.session() as s:
            repo.update_progress(s, self.job_id, worker_id=self.worker_id, disk_bytes=total_bytes)

    def on_event(self, message: str, level: str = "info", data: dict | None = None) -> None:
        with self.db.session() as s:
            repo.record_event(s, self.job_id, message, level=level, data=data)

    def on_memory_plan(self, plan: MemoryPlan) -> None:
        """For the scheduler: its inference counts the plan against its memory budget."""
        write_plan(self.storage.job_dir(self.job_id) / PLAN_FILE, plan.device, plan.total)

    def stop_requested(self) -> StopRequest | None:
        now = time.monotonic()
        if self._requested is None and now - self._last_poll >= POLL_INTERVAL_S:
            self._last_poll = now
            with self.db.session() as s:
                job = repo.heartbeat(s, self.job_id, worker_id=self.worker_id)
                action = job.requested_action
            # The engine knows cancel and pause; going back to the queue is a pause to it (a
            # resume point, then stop), and the runner tells the two apart when it records.
            self._requested = ENGINE_STOP.get(action) if action is not None else None
        return self._requested

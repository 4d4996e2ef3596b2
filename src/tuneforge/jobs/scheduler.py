"""The scheduler: recover orphaned jobs, then claim queued jobs while a slot is free.

Each server and each ``tuneforge worker`` runs one. Claims are atomic in the store, so any
number of schedulers can share one database; no job ever runs twice.
"""

from __future__ import annotations

import logging
import socket
import threading

from tuneforge.config import Settings
from tuneforge.errors import Conflict
from tuneforge.jobs.executor import SubprocessExecutor, process_alive, worker_identity
from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.models import TuningJob

log = logging.getLogger("tuneforge.scheduler")

# A runner on another machine whose heartbeat is older than this is presumed dead. Runners
# heartbeat every runner.HEARTBEAT_INTERVAL_S.
STALE_HEARTBEAT_S = 120.0


def default_slots() -> list[tuple[int, ...]]:
    """One slot per GPU, each with its device; one device-less slot on a CPU machine."""
    try:
        import torch

        count = torch.cuda.device_count()
    except ImportError:
        count = 0
    return [(index,) for index in range(count)] or [()]


class Scheduler:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        executor: SubprocessExecutor | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.worker_id = worker_id or worker_identity()
        self.executor = executor or SubprocessExecutor(settings, self.worker_id)
        slots = default_slots()
        if settings.slots:
            slots = (
                (slots * settings.slots)[: settings.slots] if slots[0] else [()] * settings.slots
            )
        self.slots = slots
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def capacity(self) -> int:
        return len(self.slots)

    def is_alive(self, job: TuningJob) -> bool | None:
        """Whether the runner of a running job still exists: None when this machine cannot
        tell (another machine's job), and only a stale heartbeat then says it is gone."""
        if job.id in self.executor.running:
            return self.executor.running[job.id].process.poll() is None
        host, _, pid = (job.worker_id or "").rpartition(":")
        if host != socket.gethostname():
            return None
        if job.worker_id == self.worker_id:
            return False  # ours, but not among our runners: lost in a restart
        if not process_alive(int(pid) if pid.isdigit() else None):
            return False  # its scheduler is gone, and its runners died with it
        if job.runner_pid is None:
            return None  # just claimed by a live scheduler that is starting its runner
        return process_alive(job.runner_pid)

    def tick(self) -> list[str]:
        """One round: recover, reap, claim. Returns the ids of the jobs started."""
        for finished in self.executor.reap():
            log.info("runner of %s exited with %s", finished.job_id, finished.process.returncode)
        with self.db.session() as s:
            for job in repo.requeue_orphans(s, self.is_alive, stale_after_s=STALE_HEARTBEAT_S):
                log.warning("recovered job %s: now %s", job.id, job.state)
        started = []
        while len(self.executor.running) < self.capacity:
            with self.db.session() as s:
                job = repo.claim_next_job(s, self.worker_id, self.capacity)
            if job is None:
                break
            self.executor.start(job.id, self._free_devices())
            if runner := self.executor.running.get(job.id):  # still running
                self._record_runner_pid(job.id, runner.process.pid)
            started.append(job.id)
        if len(self.executor.running) >= self.capacity:
            with self.db.session() as s:
                repo.mark_waiting_for_capacity(s)
        return started

    def _record_runner_pid(self, job_id: str, pid: int) -> None:
        """Tell other schedulers on this host which process runs the job, before the runner
        itself can (it heartbeats once its imports are done)."""
        try:
            with self.db.session() as s:
                repo.heartbeat(s, job_id, worker_id=self.worker_id, runner_pid=pid)
        except Conflict:  # already finished or recovered; the reaper handles the process
            log.warning("job %s changed before its runner pid was recorded", job_id)

    def _free_devices(self) -> tuple[int, ...]:
        """The first slot's devices that no runner uses, else the least-used slot's (never
        none: a runner without CUDA_VISIBLE_DEVICES would see every GPU)."""
        busy = self.executor.busy_devices()
        return min(self.slots, key=lambda devices: sum(busy[d] for d in devices))

    # --- running in the background --------------------------------------------------------
    def run_forever(self, interval_s: float = 0.5) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # keep scheduling: one bad round must not stop every job
                log.exception("scheduler round failed")
            self._stop.wait(interval_s)

    def start(self, interval_s: float = 0.5) -> None:
        self._thread = threading.Thread(
            target=self.run_forever, args=(interval_s,), name="tuneforge-scheduler", daemon=True
        )
        self._thread.start()

    def stop(self, *, kill_runners: bool = True) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        if kill_runners:
            self.executor.stop_all()

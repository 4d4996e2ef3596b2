"""The scheduler: recover orphaned jobs, then claim queued jobs while a slot is free.

Each server and each ``tuneforge worker`` runs one. Claims are atomic in the store, so any
number of schedulers can share one database; no job ever runs twice. The scheduler knows its
runners only through the ``Executor`` protocol and the handles it returns (stored in each job
row), so recovery works the same whatever runs the jobs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from tuneforge.config import Settings
from tuneforge.errors import Conflict
from tuneforge.jobs.cpu_share import remove_share, share_file, split, write_share
from tuneforge.jobs.executor import Executor, executor_for
from tuneforge.jobs.memory_share import planned_by_device
from tuneforge.jobs.out_of_memory import ERROR_CODE as OUT_OF_MEMORY
from tuneforge.jobs.out_of_memory import out_of_memory_message
from tuneforge.machine import cpu_count, gpu_count
from tuneforge.models.threads import set_process_share
from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.models import TuningJob

log = logging.getLogger("tuneforge.scheduler")

# A runner whose executor cannot tell whether it lives (one on another machine) is presumed
# dead once its heartbeat is older than this. Runners heartbeat every
# runner.HEARTBEAT_INTERVAL_S.
STALE_HEARTBEAT_S = 120.0


def worker_identity() -> str:
    """Who claims a job: unique among the schedulers sharing a database."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Started:
    """A runner this scheduler started and has not yet seen gone."""

    job_id: str
    handle: str
    devices: tuple[int, ...]


def default_slots() -> list[tuple[int, ...]]:
    """One slot per GPU, each with its device; one device-less slot on a CPU machine."""
    return [(index,) for index in range(gpu_count())] or [()]


class Scheduler:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        executor: Executor | None = None,
        worker_id: str | None = None,
        serving: Callable[[], bool] = lambda: False,
        training_memory: Callable[[dict[str, int]], None] | None = None,
    ) -> None:
        """``serving``: whether this process's inference holds a model on the CPU now (it
        then takes a share of the cores from the runners). ``training_memory``: told the
        memory the running jobs planned for, per device (``cpu``, ``cuda:N``), whenever it
        changes; this process's inference counts it against its budget."""
        self.db = db
        self.serving = serving
        self.training_memory = training_memory
        self._planned: dict[str, int] = {}  # what training_memory was last told
        self.cores = cpu_count()
        self._shares: dict[str, int] = {}  # the thread count last written for each runner
        self.settings = settings
        self.worker_id = worker_id or worker_identity()
        self.executor: Executor = executor or executor_for(settings, self.worker_id, db)
        # An executor that places jobs elsewhere (Ray) knows better than this machine's GPUs.
        slots = getattr(self.executor, "slots", default_slots)()
        if settings.slots:
            slots = (
                (slots * settings.slots)[: settings.slots] if slots[0] else [()] * settings.slots
            )
        self.slots = slots
        # The scheduler keeps its own runners' handles and devices: the executor need not know
        # slots, and the slots free up as the executor reports runners gone.
        self.running: dict[str, Started] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def capacity(self) -> int:
        return len(self.slots)

    def is_alive(self, job: TuningJob) -> bool | None:
        """Whether the runner of a running job still exists, as the executor tells from the
        job's handle: None when it cannot tell (then only a stale heartbeat says it is gone).
        For a runner of ours, the handle we hold counts, in case the row's was not written."""
        started = self.running.get(job.id)
        handle = started.handle if started else job.runner_handle
        if handle is None:
            return None  # nothing to ask about: the heartbeat decides
        return self.executor.is_alive(handle)

    def fatal_exit(self, job: TuningJob) -> tuple[str, str] | None:
        """The error (code, message) a job fails with at once because of how its runner
        ended (killed for memory); None when a new attempt may well succeed."""
        started = self.running.get(job.id)
        handle = started.handle if started else job.runner_handle
        if handle is not None and self.executor.exit_cause(handle) == OUT_OF_MEMORY:
            return OUT_OF_MEMORY, out_of_memory_message(job.mode)
        return None

    def tick(self) -> list[str]:
        """One round: reap, recover, claim. Returns the ids of the jobs started."""
        self._forget_gone_runners()
        with self.db.session() as s:
            for job in repo.requeue_orphans(
                s, self.is_alive, stale_after_s=STALE_HEARTBEAT_S, fatal_exit=self.fatal_exit
            ):
                log.warning("recovered job %s: now %s", job.id, job.state)
        started = []
        while len(self.running) < self.capacity:
            with self.db.session() as s:
                job = repo.claim_next_job(
                    s, self.worker_id, self.capacity, runner_handle=self.executor.claim_handle()
                )
            if job is None:
                break
            devices = self._free_devices(job.devices)
            handle = self.executor.start(job.id, devices)
            self.running[job.id] = Started(job.id, handle, devices)
            self._record_runner_handle(job.id, handle)
            started.append(job.id)
        if len(self.running) >= self.capacity:
            with self.db.session() as s:
                repo.mark_waiting_for_capacity(s)
        self.share_cores()
        self.share_memory()
        return started

    def share_cores(self) -> None:
        """Split the cores between the running jobs and this process's inference (see
        ``jobs/cpu_share.py``): each runner's share goes into its job's share file."""
        each, inference = split(self.cores, len(self.running), self.serving())
        set_process_share(inference)
        for job_id in self.running:
            if self._shares.get(job_id) != each:
                try:
                    write_share(share_file(self.settings, job_id), each)
                except OSError:
                    log.warning("could not write the CPU share of job %s", job_id, exc_info=True)
                    continue
                self._shares[job_id] = each

    def _forget_share(self, job_id: str) -> None:
        """The job's runner is gone: so is its share, written or not (a share written as the
        run freed its folder would outlive the run, and a new run of the job gets its own)."""
        self._shares.pop(job_id, None)
        try:
            remove_share(share_file(self.settings, job_id))
        except OSError:
            log.warning("could not remove the CPU share of job %s", job_id, exc_info=True)

    def share_memory(self) -> None:
        """Tell this process's inference what the running jobs planned to use (see
        ``jobs/memory_share.py``)."""
        if self.training_memory is None:
            return
        runners = ((s.job_id, s.devices) for s in self.running.values())
        planned = planned_by_device(self.settings, runners)
        if planned != self._planned:
            self.training_memory(planned)
            self._planned = planned

    def _forget_gone_runners(self) -> None:
        """Free the slots of runners the executor says are gone (None: still ours to wait
        for; our own runners are ones an executor can always see)."""
        for started in list(self.running.values()):
            if self.executor.is_alive(started.handle) is False:
                del self.running[started.job_id]
                self._forget_share(started.job_id)

    def _record_runner_handle(self, job_id: str, handle: str) -> None:
        """Tell every other scheduler how to ask about the job's runner. Until this lands the
        row holds our claim handle, which says the job is being started by a live scheduler."""
        try:
            with self.db.session() as s:
                repo.heartbeat(s, job_id, worker_id=self.worker_id, runner_handle=handle)
        except Conflict:  # already finished or recovered; reaping handles the runner
            log.warning("job %s changed before its runner handle was recorded", job_id)

    def _free_devices(self, count: int = 1) -> tuple[int, ...]:
        """The first slot's devices that no runner uses, else the least-used slot's (never
        none: a runner without CUDA_VISIBLE_DEVICES would see every GPU). A job on ``count``
        devices gets the ``count`` least-used GPUs, one for each of its ranks (it still takes
        one slot of the capacity)."""
        busy = Counter(device for started in self.running.values() for device in started.devices)
        gpus = sorted({device for slot in self.slots for device in slot})
        if count > 1 and gpus:
            return tuple(sorted(sorted(gpus, key=lambda d: busy[d])[:count]))
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

    def stop(self, *, kill_runners: bool = True, grace_s: float | None = None) -> None:
        """Stop scheduling; with ``kill_runners``, also end this scheduler's runners (see
        ``stop_runners``; ``grace_s`` defaults to the configured shutdown grace period)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        if kill_runners:
            self.stop_runners(self.settings.shutdown_grace_s if grace_s is None else grace_s)

    def stop_runners(self, grace_s: float) -> None:
        """A graceful stop: each running job is asked to go back to the queue and its runner to
        stop, saving a resume point; runners still there after ``grace_s`` are killed. Either
        way the jobs are requeued without the attempt counting: the stop is not their fault."""
        for started in self.running.values():
            try:
                with self.db.session() as s:
                    repo.request_requeue(s, started.job_id, f"{self.worker_id} is stopping")
            except Exception:  # the runner's own SIGTERM handler asks as well
                log.warning("could not ask job %s to requeue", started.job_id, exc_info=True)
            self.executor.interrupt(started.handle)
        deadline = time.monotonic() + grace_s
        while self._runners_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        for started in list(self.running.values()):
            self.executor.stop(started.handle)
            self._forget_share(started.job_id)
        self.running.clear()

    def _runners_alive(self) -> bool:
        return any(self.executor.is_alive(started.handle) for started in self.running.values())

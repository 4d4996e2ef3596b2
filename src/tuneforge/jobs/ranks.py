"""A multi-device job: its runner trains through N rank processes under torch.distributed.

The runner validates the datasets once, as for any job, then starts the ranks with torch's
elastic launcher (``torch.distributed.launcher.api.elastic_launch``, what ``torchrun`` runs) on
this machine: each rank runs the engine on its share of every batch (``engine/distributed.py``),
rank 0 reports to the store and files the checkpoints, and rank 0's result comes back to the
runner, which records the outcome as for a single-process job.

How the ranks end with their job:

* cancel, pause and a stopping server reach rank 0 through the store (its observer), which
  shares the request with every rank at the step's end; they all stop at that step;
* a rank that fails makes the launcher stop the others (no restarts) and raise in the runner;
  the failure's code and message come back through a file (:func:`_write_failure`);
* a runner that is killed takes its ranks with it: each rank asks Linux for SIGKILL when the
  runner dies (``PR_SET_PDEATHSIG``), and they share the runner's process group, which the
  executor's ``stop`` kills whole.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tuneforge.config import Settings
from tuneforge.data.records import Example
from tuneforge.engine.errors import TuningError
from tuneforge.engine.methods import TuningMethod, all_methods
from tuneforge.engine.observer import TrainingPlan, TuningObserver
from tuneforge.engine.result import TuningResult
from tuneforge.engine.spec import TuningSpec
from tuneforge.errors import InvalidArgument, TuneforgeError
from tuneforge.machine import cpu_count, gpu_count

PR_SET_PDEATHSIG = 1
# How long the launcher gives the other ranks to exit after one failed, before SIGKILL.
SHUTDOWN_TIMEOUT_S = 5
RANK_LOGS = "ranks"  # under the job's logs/: the launcher's per-attempt folders
FAILURE_FILE = "failure-rank{rank}.json"
W = TypeVar("W")
R = TypeVar("R")


@dataclass
class RankWork:
    """What every rank needs to train its part of the job (sent to each, pickled)."""

    settings: Settings
    job_id: str
    worker_id: str | None
    spec: TuningSpec
    train: list[Example]
    validation: list[Example]
    output_dir: Path
    # Rank 0 records the dataset statistics with the plan it resolved, as a single process does.
    statistics: DatasetStatistics | None = None
    runner_pid: int = 0  # the process the ranks die with (0: none, Ray ends them)

    @property
    def log_dir(self) -> Path:
        return self.output_dir / "logs" / RANK_LOGS


@dataclass
class DatasetStatistics:
    """Records the training file's statistics once the run has resolved its epochs and batch
    size (``StoreObserver.before_start``)."""

    job_id: str
    worker_id: str | None
    train: list[Example]
    validation_count: int
    token_counts: list[int]
    tokenizer_source: str
    # The runner's loaded tokenizer, used where it is at hand; a rank loads its own.
    tokenizer: Any = field(default=None, repr=False, compare=False)
    media_tokens: int = 0  # what the training file's media cost (validation report's count)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "tokenizer": None}

    def record(self, db, plan: TrainingPlan) -> None:
        from tuneforge.data.media import KIND_WORDS
        from tuneforge.data.stats import compute_stats
        from tuneforge.models.loading import load_tokenizer
        from tuneforge.store import repo

        hyperparameters = plan.hyperparameters
        stats = compute_stats(
            self.train,
            self.tokenizer or load_tokenizer(self.tokenizer_source),
            epochs=plan.epochs,
            batch_size=hyperparameters["batch_size"],
            max_length=hyperparameters["max_seq_length"],
            token_counts=self.token_counts,
            media_tokens=self.media_tokens,
        )
        media = "".join(
            f", {count} {KIND_WORDS[kind]}" for kind, count in sorted(stats.media.items())
        )
        if stats.media_tokens:
            media += f" ({stats.media_tokens} of the tokens)"
        with db.session() as s:
            repo.update_progress(
                s, self.job_id, worker_id=self.worker_id, data_stats=stats.to_vertex()
            )
            repo.record_event(
                s,
                self.job_id,
                f"dataset processed: {len(self.train)} training examples, "
                f"{self.validation_count} validation examples, {stats.total_tokens} tokens" + media,
                data={
                    "examples": len(self.train),
                    "tokens": stats.total_tokens,
                    "media": stats.media,
                    "media_tokens": stats.media_tokens,
                },
            )


def offered_devices() -> tuple[int, str]:
    """How many ranks a job may run on this machine, and what they are: one per GPU on a CUDA
    machine, else one per core (each rank needs a thread of the job's share of the cores, and a
    job alone gets every core)."""
    gpus = gpu_count()
    if gpus:
        return gpus, "GPUs"
    return cpu_count(), "CPU cores"


def check_devices(devices: int, method: TuningMethod, batch_size: int | str = "auto") -> None:
    """A 400 unless this machine can train ``method`` on ``devices`` ranks, each taking an
    equal share of a ``batch_size`` batch (an automatic one is made to split evenly)."""
    if devices < 1:
        raise InvalidArgument(f"devices must be at least 1 (got {devices})", "devices")
    if devices == 1:
        return
    if not method.multi_device:
        offered = [m.name for m in all_methods() if m.multi_device]
        raise InvalidArgument(
            f"the {method.name} method trains on one device; devices > 1 is available for "
            f"{', '.join(offered)}",
            "devices",
        )
    most, kind = offered_devices()
    if devices > most:
        raise InvalidArgument(
            f"devices {devices} is more than this machine offers: it has {most} {kind}",
            "devices",
        )
    if isinstance(batch_size, int) and batch_size % devices:
        raise InvalidArgument(
            f"batch_size {batch_size} does not split evenly over {devices} devices; choose a "
            f"multiple of {devices}",
            "batch_size",
        )


def launch(work: RankWork, devices: int) -> TuningResult:
    """Train ``work`` on ``devices`` ranks of this machine; rank 0's result."""
    work.runner_pid = os.getpid()
    work.log_dir.mkdir(parents=True, exist_ok=True)
    for stale in work.log_dir.glob(FAILURE_FILE.format(rank="*")):
        stale.unlink()  # an earlier attempt's
    return run_ranks(train_rank, work, devices, work.log_dir, run_id=work.job_id)


def run_ranks(function: Callable[[W], R], work: W, devices: int, log_dir: Path, run_id: str) -> R:
    """``function(work)`` in ``devices`` processes of this machine, one rank each, under
    torch's elastic launcher (``torchrun --standalone``'s rendezvous); rank 0's return value.
    ``function`` must be importable by name (the ranks are spawned) and should die with this
    process (:func:`die_with_parent`)."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=devices,
        run_id=run_id,
        # torchrun's --standalone: a rendezvous of this machine alone, on a free port.
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,  # a failed rank fails the attempt; the scheduler decides on retries
        monitor_interval=0.1,
        start_method="spawn",
        # Its per-attempt folders (error files) there, not in the machine's temporary folder.
        logs_specs=DefaultLogsSpecs(log_dir=str(log_dir)),
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    try:
        return elastic_launch(config, function)(work)[0]
    except ChildFailedError as err:
        raise _failure(log_dir, err) from None


def train_rank(work: RankWork) -> TuningResult:
    """One rank's run (in a process of its own, started by the launcher, or a Ray actor of
    its own, ``jobs/ray_ranks.py``, which has no parent to die with: ``runner_pid`` 0)."""
    if work.runner_pid:
        die_with_parent(work.runner_pid)
    from tuneforge.engine.distributed import is_main_rank
    from tuneforge.engine.run import run_tuning

    db = None
    observer = TuningObserver()
    try:
        if is_main_rank():
            from tuneforge.jobs.store_observer import StoreObserver
            from tuneforge.storage import storage_for
            from tuneforge.store.db import Database

            db = Database(work.settings.resolved_database_url)
            observer = StoreObserver(db, work.job_id, work.worker_id, storage_for(work.settings))
            if work.statistics is not None:
                statistics = work.statistics
                observer.before_start = lambda plan: statistics.record(db, plan)
        return run_tuning(
            work.spec, work.train, work.validation, work.output_dir, work.settings, observer
        )
    except TuneforgeError as err:  # the job's fault, said as a single process would
        _write_failure(work.log_dir, getattr(err, "code", "invalid_request"), str(err))
        raise
    finally:
        if db is not None:
            db.dispose()


def die_with_parent(parent_pid: int) -> None:
    """What a rank does first: die when the process that launched it dies (SIGKILL, by Linux's
    ``PR_SET_PDEATHSIG``), and take SIGTERM again. The runner takes SIGTERM with sigwait and
    so starts with it blocked, which a spawned process inherits; a rank must die of the
    SIGTERM the launcher sends to stop it."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the launcher stops them
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _write_failure(log_dir: Path, code: str, message: str) -> None:
    from tuneforge.engine.distributed import rank

    path = log_dir / FAILURE_FILE.format(rank=rank())
    path.write_text(json.dumps({"code": code, "message": message}))


def _failure(log_dir: Path, err) -> TuningError:
    """The error a failed launch fails the job with: a rank's own (the lowest rank's, when
    several wrote one), else how the first failed rank's process ended."""
    for written in sorted(log_dir.glob(FAILURE_FILE.format(rank="*"))):
        failure = json.loads(written.read_text())
        return TuningError(failure["message"], code=failure["code"])
    rank, first = err.get_first_failure()
    how = (
        f"was killed by {first.signal_name()}" if first.exitcode < 0 else f"exited {first.exitcode}"
    )
    return TuningError(
        f"rank {rank} of the job's processes {how}: {first.message or 'no error recorded'}",
        code="internal_error",
    )

"""What a job's process runs: ``python -m tuneforge.jobs.runner JOB_ID``.

It reads the job from the store, validates and measures the datasets, tunes through the engine
(resuming from the job's latest checkpoint, if an earlier attempt left one), and records the
outcome: checkpoints, the tuned model, a metrics CSV and a loss-curve PNG, or the error.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tuneforge.config import Settings, get_settings
from tuneforge.data.media_check import example_media
from tuneforge.data.validate import first_errors
from tuneforge.engine.errors import TuningError
from tuneforge.engine.methods import get_method
from tuneforge.engine.plot import plot_loss_curve
from tuneforge.engine.result import TuningResult
from tuneforge.engine.run import run_tuning
from tuneforge.engine.spec import GraderModelSource, TuningSpec
from tuneforge.errors import Conflict, TuneforgeError
from tuneforge.graders import parse_grader
from tuneforge.graders.spec import models_named
from tuneforge.jobs.datasets import resolve_dataset, validate_for_job
from tuneforge.jobs.media_files import media_check, resolved_example
from tuneforge.jobs.ranks import DatasetStatistics, RankWork, launch
from tuneforge.jobs.store_observer import StoreObserver
from tuneforge.jobs.targets import model_target
from tuneforge.models.loading import load_tokenizer, quiet_transformers
from tuneforge.models.resolve import resolve_base_model
from tuneforge.storage import Storage, storage_for
from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.models import TuningJob
from tuneforge.store.states import JobState, RequestedAction, SubState

log = logging.getLogger("tuneforge.runner")

METRICS_CSV_COLUMNS = [
    "step",
    "train_loss",
    "train_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
]
# Keys of a job's stored hyperparameters that are not engine hyperparameters.
JOB_ONLY_KEYS = {"pre_tuned_model"}
# How often the runner tells the store it is alive, whatever it is doing (loading a model,
# validating a file, a teacher writing answers): well inside the scheduler's stale limit.
HEARTBEAT_INTERVAL_S = 10.0
# Starts a multi-device job's ranks and returns rank 0's result.
RankLauncher = Callable[[RankWork, int], TuningResult]
# The exit status of a runner that requeued its job (or left it for recovery to) on SIGTERM.
EXIT_REQUEUED = 75  # EX_TEMPFAIL


class DatasetRejected(TuneforgeError):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def run_job(
    db: Database,
    settings: Settings,
    job_id: str,
    worker_id: str | None = None,
    stop_signal: threading.Event | None = None,
    launch_ranks: RankLauncher = launch,
) -> None:
    """Run the job to its end. ``stop_signal`` (set on SIGTERM by ``main``) means the server
    running the job is stopping: see ``RequeueWhenStopped``. ``launch_ranks`` starts a
    multi-device job's ranks: torch's elastic launcher on this machine, unless the executor
    places them (the Ray executor's ``ray_ranks.launch``)."""
    with db.session() as s:
        job = repo.heartbeat(s, job_id, worker_id=worker_id)
    storage = storage_for(settings)
    observer = StoreObserver(db, job_id, worker_id, storage)
    with heartbeats(db, job_id, worker_id), released(storage, job_id):
        # A multi-device job trains in its ranks: once they start, rank 0 saves and requeues.
        launched = threading.Event()
        if stop_signal is not None:
            watch = RequeueWhenStopped(db, job_id, worker_id, settings.shutdown_grace_s)
            watch.start(
                stop_signal,
                training_started=lambda: observer.plan is not None or launched.is_set(),
            )
        _run(db, settings, job, observer, worker_id, launched.set, launch_ranks)


def _run(
    db: Database,
    settings: Settings,
    job: TuningJob,
    observer,
    worker_id,
    on_launch: Callable[[], None] = lambda: None,
    launch_ranks: RankLauncher = launch,
) -> None:
    """Run the job; ``on_launch`` is called as a multi-device job starts its ranks."""
    job_id = job.id
    try:
        spec = _spec_for(job, db, settings, observer)
        train, validation, statistics = _prepare_datasets(job, spec, db, settings, observer)
        job_dir = storage_for(settings).fetch_job(job_id)  # with any saves to resume from
        if job.devices > 1:
            work = RankWork(
                settings, job_id, worker_id, spec, train, validation, job_dir, statistics
            )
            on_launch()
            strategy = "DDP" if spec.mode == "peft" else "FSDP2"
            observer.on_event(
                f"training on {job.devices} processes under torch.distributed ({strategy})",
                data={"devices": job.devices},
            )
            result = launch_ranks(work, job.devices)
        else:
            result = run_tuning(spec, train, validation, job_dir, settings, observer)
        _record_outcome(db, settings, job, result, worker_id)
    except DatasetRejected as err:
        _fail(db, job_id, worker_id, "invalid_training_file", str(err), err.param)
    except TuningError as err:
        _fail(db, job_id, worker_id, err.code, str(err))
    except TuneforgeError as err:
        _fail(db, job_id, worker_id, "invalid_request", str(err), getattr(err, "param", None))
    except Exception as err:  # a bug: keep the traceback in the runner log, tell the user why
        traceback.print_exc()
        _fail(db, job_id, worker_id, "internal_error", f"{type(err).__name__}: {err}")


@contextmanager
def released(storage: Storage, job_id: str) -> Iterator[None]:
    """Release the job's local folder when the run ends, however it ends: an object store
    gets what changed since the last save, and the machine's copy is freed."""
    try:
        yield
    finally:
        try:
            storage.release_job(job_id)
        except Exception:  # the store is unreachable: the local folder stays as it is
            log.warning("job %s: its folder could not be released", job_id, exc_info=True)


@contextmanager
def heartbeats(
    db: Database, job_id: str, worker_id: str | None, interval_s: float = HEARTBEAT_INTERVAL_S
) -> Iterator[None]:
    """Heartbeat the job from a background thread while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval_s):
            try:
                with db.session() as s:
                    repo.heartbeat(s, job_id, worker_id=worker_id)
            except Conflict:
                return  # finished, or no longer ours: the run itself finds out and stops
            except Exception:  # a transient database error: try again next time
                log.warning("heartbeat of job %s failed", job_id, exc_info=True)

    thread = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval_s)


class RequeueWhenStopped:
    """What a runner does on SIGTERM: its server or worker is stopping, gracefully or because
    it died (``PR_SET_PDEATHSIG`` sends SIGTERM then). Neither is the job's fault, so the job
    goes back to the queue without the attempt counting.

    The job is asked to requeue in the store. A run already training sees that at its next
    step boundary, saves a resume point, and records the requeue itself (``_record_outcome``);
    a runner still loading has nothing to save, requeues the job and exits at once. A runner
    still there when the grace period ends exits anyway: recovery then requeues the job, still
    uncounted, from its last checkpoint."""

    def __init__(self, db: Database, job_id: str, worker_id: str | None, grace_s: float) -> None:
        self.db, self.job_id, self.worker_id, self.grace_s = db, job_id, worker_id, grace_s

    def start(self, stop_signal: threading.Event, training_started: Callable[[], bool]) -> None:
        def watch() -> None:
            stop_signal.wait()
            self._on_stop(training_started())

        threading.Thread(target=watch, name=f"requeue-{self.job_id}", daemon=True).start()

    def _on_stop(self, training: bool) -> None:
        log.warning("job %s: asked to stop (SIGTERM); requeueing it", self.job_id)
        try:
            with self.db.session() as s:
                repo.request_requeue(s, self.job_id, "its runner was asked to stop (SIGTERM)")
            if not training:
                with self.db.session() as s:
                    repo.requeue_interrupted(
                        s,
                        self.job_id,
                        "stopped before training began; back in the queue "
                        "(not counted as an attempt)",
                        worker_id=self.worker_id,
                    )
        except Exception:  # the job moved on (cancelled, finished): nothing to requeue
            log.warning("job %s: not requeued", self.job_id, exc_info=True)
        if training:
            time.sleep(self.grace_s)  # the run saves and records the requeue meanwhile
            log.error("job %s: no resume point within %g s; exiting", self.job_id, self.grace_s)
        os._exit(EXIT_REQUEUED)


def _spec_for(job: TuningJob, db: Database, settings: Settings, observer=None) -> TuningSpec:
    """The engine's spec for a job. A hyperparameter the job's method does not take (a job
    queued before each method had its own type could hold a supervised job's ``beta``) is left
    out, with a warning, rather than failing the job."""
    known = get_method(job.method).hyperparameters.model_fields
    stored = {k: v for k, v in job.hyperparameters.items() if k not in JOB_ONLY_KEYS}
    hyperparameters = {k: v for k, v in stored.items() if k in known}
    ignored = sorted(stored.keys() - known.keys())
    if ignored and observer is not None:
        observer.on_event(
            f"the {job.method} method takes no {', '.join(ignored)}; ignored", level="warning"
        )
    options: dict = {}
    if pre_tuned := job.hyperparameters.get("pre_tuned_model"):
        with db.session() as s:
            target = model_target(s, settings, job.project_id, pre_tuned)
        options["init_adapter"] = str(target.adapter_path or target.weights_path)
    if job.teacher_model:
        with db.session() as s:
            teacher = model_target(s, settings, job.project_id, job.teacher_model)
        options["teacher_model"] = teacher.base_source
        if teacher.adapter_path or teacher.weights_path:
            options["teacher_adapter"] = str(teacher.adapter_path or teacher.weights_path)
    if grader := job.hyperparameters.get("grader"):
        with db.session() as s:
            options["grader_models"] = grader_models(s, settings, job.project_id, grader)
    return TuningSpec(
        base_model=job.base_model,
        method=job.method,
        mode=job.mode.value,
        hyperparameters=hyperparameters,  # read as the method's own type by TuningSpec
        seed=job.seed if job.seed is not None else 42,
        **options,
    )


def grader_models(session, settings: Settings, project_id: str, grader: dict) -> dict:
    """Each model the grader names, as the engine loads it: its base and checkpoint folder."""
    sources = {}
    for name in models_named(parse_grader(grader)):
        target = model_target(session, settings, project_id, name)
        tuned = target.adapter_path or target.weights_path
        sources[name] = GraderModelSource(
            base_model=target.base_source,
            tuned=str(tuned) if tuned else None,
            scores_only=target.scores_only,
        )
    return sources


def _prepare_datasets(
    job: TuningJob, spec: TuningSpec, db: Database, settings: Settings, observer: StoreObserver
):
    """Validate both files against the base model's tokenizer; their statistics are recorded
    when training starts, with the epochs and batch size it resolved (the only resolution)."""
    quiet_transformers()
    tokenizer = load_tokenizer(resolve_base_model(job.base_model, settings).source)
    method = get_method(job.method)
    task = method.task
    max_length = spec.hyperparameters.max_seq_length
    with db.session() as s:
        repo.update_progress(
            s, job.id, worker_id=observer.worker_id, sub_state=SubState.PROCESSING_DATASET
        )
    media = media_check(db, settings, job.project_id, job.base_model, method, job.mode)
    datasets, token_counts, media_tokens = {}, [], 0
    for param, reference in (
        ("training_file", job.training_file),
        ("validation_file", job.validation_file),
    ):
        if not reference:
            datasets[param] = []
            continue
        with db.session() as s:
            path = resolve_dataset(s, settings, job.project_id, reference, param)
        report = validate_for_job(
            path, task, param, tokenizer=tokenizer, max_length=max_length, media=media
        )
        if not report.ok:
            raise DatasetRejected(first_errors(report.problems, report.error_count), param)
        for warning in report.problems:
            if warning.severity == "warning":
                observer.on_event(f"{param}: {warning}", level="warning")
        # Media named by file are read now: the engine trains on bytes.
        datasets[param] = [
            resolved_example(example, media, media.limits) if example_media(example) else example
            for example in report.examples
        ]
        if param == "training_file":
            token_counts, media_tokens = report.token_counts, report.media_tokens
    train, validation = datasets["training_file"], datasets["validation_file"]
    statistics = DatasetStatistics(
        job.id,
        observer.worker_id,
        train,
        len(validation),
        token_counts,
        resolve_base_model(job.base_model, settings).source,
        tokenizer,
        media_tokens,
    )
    observer.before_start = lambda plan: statistics.record(db, plan)
    return train, validation, statistics


def _record_outcome(
    db: Database, settings: Settings, job: TuningJob, result: TuningResult, worker_id
) -> None:
    if result.outcome != "succeeded":
        state = JobState.CANCELLED if result.outcome == "cancelled" else JobState.PAUSED
        with db.session() as s:
            if state == JobState.PAUSED and _requeue_requested(s, job.id):
                repo.requeue_interrupted(
                    s,
                    job.id,
                    f"resume point saved at step {result.steps}; back in the queue "
                    "(not counted as an attempt)",
                    worker_id=worker_id,
                )
                return
            repo.finish_job(s, job.id, state, worker_id=worker_id)
        return
    with db.session() as s:
        repo.update_progress(
            s,
            job.id,
            worker_id=worker_id,
            sub_state=SubState.POST_PROCESSING,
            trained_tokens=result.trained_tokens,
        )
    storage = storage_for(settings)
    job_dir = storage.job_dir(job.id)
    with db.session() as s:
        series = repo.metric_series(s, job.id)
    _write_metrics_csv(series, job_dir / "metrics.csv")
    plot_loss_curve(
        [(row["step"], row["loss"]) for row in series["steps"]],
        [(row["step"], row["valid_loss"]) for row in series["epochs"]],
        job_dir / "loss_curve.png",
        title=f"{job.id} ({job.base_model})",
    )
    for name in ("metrics.csv", "loss_curve.png"):  # at the URIs storage.job_uri gives them
        storage.publish(job_dir / name)
    _finish_succeeded(db, job, result, worker_id)


def _requeue_requested(session, job_id: str) -> bool:
    return repo.load_job(session, job_id).requested_action == RequestedAction.REQUEUE


def _finish_succeeded(db: Database, job: TuningJob, result: TuningResult, worker_id) -> None:
    """Mark the job SUCCEEDED and create its tuned model, both or neither (one transaction)."""
    with db.session() as s:
        try:
            repo.finish_job(s, job.id, JobState.SUCCEEDED, worker_id=worker_id)
        except Conflict:
            if repo.load_job(s, job.id).state != JobState.CANCELLING:
                log.warning("job %s is no longer this runner's; its result is dropped", job.id)
                return
            # Cancelled while post-processing: the user's word wins, and no model is made.
            repo.finish_job(s, job.id, JobState.CANCELLED, worker_id=worker_id)
            return
        default = result.default_checkpoint
        stored = list(repo.list_checkpoints(s, job.id))
        chosen = next((c for c in stored if default and c.step == default.step), None)
        if chosen is not None:
            repo.set_default_checkpoint(s, job.id, chosen.id)
        repo.create_tuned_model(
            s,
            job.id,
            display_name=job.display_name or job.suffix,
            default_checkpoint_id=chosen.id if chosen else None,
        )


def _write_metrics_csv(series: dict, path: Path) -> None:
    valid = {row["step"]: row for row in series["epochs"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(METRICS_CSV_COLUMNS)
        for row in series["steps"]:
            epoch = valid.get(row["step"], {})
            writer.writerow(
                [
                    row["step"],
                    row["loss"],
                    row.get("token_accuracy"),
                    epoch.get("valid_loss"),
                    epoch.get("valid_token_accuracy"),
                ]
            )


def _fail(db: Database, job_id: str, worker_id, code: str, message: str, param=None) -> None:
    log.error("job %s failed: %s: %s", job_id, code, message)
    try:
        with db.session() as s:
            job = repo.load_job(s, job_id)
            state = JobState.CANCELLED if job.state == JobState.CANCELLING else JobState.FAILED
            error = {"code": code, "message": message, "param": param}
            repo.finish_job(
                s, job_id, state, error if state == JobState.FAILED else None, worker_id=worker_id
            )
            repo.record_event(
                s, job_id, f"job failed: {message}", level="error", data={"code": code}
            )
    except Conflict as err:  # requeued or finished meanwhile: the job is not ours to fail
        log.warning("job %s: failure not recorded: %s", job_id, err)


def stop_on_sigterm(stop_signal: threading.Event) -> None:
    """Set ``stop_signal`` when SIGTERM comes: taken by a thread of its own with ``sigwait``,
    never by a signal handler.

    A dying server sends its runners several SIGTERMs (Linux sends the parent-death signal again
    as each of the parent's threads exits), and a handler runs between any two bytecodes of the
    main thread: a second SIGTERM landing inside the first's ``Event.set()`` took the Event's
    lock again and hung the runner for good. SIGTERM stays blocked in every thread, so only
    this thread takes it: a runner must start with it blocked (the executor starts it so, and a
    SIGTERM that came during the imports waits, pending), since threads inherit the mask and
    one made by an import before this call would otherwise take the default action."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    def wait() -> None:
        signal.sigwait({signal.SIGTERM})
        stop_signal.set()

    threading.Thread(target=wait, name="sigterm", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuneforge.jobs.runner")
    parser.add_argument("job_id")
    parser.add_argument("--worker-id", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = get_settings()
    db = Database(settings.resolved_database_url)
    stop_signal = threading.Event()
    stop_on_sigterm(stop_signal)
    try:
        run_job(db, settings, args.job_id, args.worker_id, stop_signal)
    finally:
        db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())

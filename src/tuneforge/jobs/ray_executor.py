"""The Ray executor: each job's runner runs as a Ray actor, placed by a Ray cluster.

The queue stays in the database: a scheduler claims jobs as it always does, and this executor
asks Ray to place each claimed job's runner somewhere with the resources the job needs (its
``devices`` GPUs on a cluster that has GPUs, else as many CPUs, and the memory its last
attempt planned for, when an earlier attempt left a plan). The actor runs the runner's own code
(``tuneforge.jobs.runner.run_job``) in its worker process, so events, checkpoints and the
outcome reach the store exactly as from a subprocess runner. A multi-device job's ranks are
Ray actors too, one per rank, which Ray places and the runner drives (``jobs/ray_ranks.py``).

A handle is ``ray://GCS_ADDRESS/ACTOR_NAME`` (``ray://GCS_ADDRESS/claim/HOST/PID`` for a claim
whose runner is not started yet). Any scheduler connected to the same cluster tells a live
runner from a dead one by looking the named actor up; a scheduler on another cluster cannot,
and says so (None: the heartbeat decides).

* ``interrupt`` asks the actor to stop as SIGTERM asks a subprocess runner: the runner saves a
  resume point and requeues its job without counting the attempt.
* ``stop`` kills the actor (``ray.kill``); a multi-device job's rank actors die with it (Ray
  ends the actors whose owner died), and the executor removes their placement group.
* A worker that dies (killed, its node lost) ends the actor: Ray reports it dead, the scheduler's
  recovery requeues the job, and the next attempt resumes from its last checkpoint.
* Actors are owned by the scheduler's process (not detached): Ray ends them if it dies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple

from tuneforge.config import Settings, get_settings, settings_env
from tuneforge.errors import TuneforgeError
from tuneforge.jobs.memory_share import plan_file, read_plan
from tuneforge.jobs.out_of_memory import ERROR_CODE as OUT_OF_MEMORY
from tuneforge.jobs.ray_ranks import remove_rank_group
from tuneforge.jobs.subprocess_executor import REMEMBERED_EXITS, process_alive
from tuneforge.storage import storage_for
from tuneforge.store import repo
from tuneforge.store.db import Database

log = logging.getLogger("tuneforge.executor")

SCHEME = "ray://"
NAMESPACE = "tuneforge"
CLAIM = "claim"
LOCAL = "local"
# How long to wait for a Ray cluster's address to answer before saying it cannot be reached.
CONNECT_TIMEOUT_S = 5.0
# How long ``stop`` waits for Ray to confirm a killed actor is gone.
STOP_WAIT_S = 30.0
# Threads of a runner's actor: ``run`` holds one for the whole job; ``interrupt`` and ``pid``
# must still be answered meanwhile.
ACTOR_THREADS = 4


class RayUnavailable(TuneforgeError):
    """Ray is not installed, or the cluster cannot be reached."""


def connect(address: str | None) -> Any:
    """Join the Ray cluster at ``address`` (None or ``local``: start a Ray for this process,
    unless this process already joined one) and return the ``ray`` module."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable(
            "the ray executor needs Ray: pip install 'tuneforge[ray]' (ray[default])"
        ) from None
    if ray.is_initialized():
        return ray
    local = address in (None, "", LOCAL)
    if not local:
        refuse_unreachable(address)
    if local:
        # A one-box Ray of our own: no token to share with anyone.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    try:
        ray.init(
            address=None if local else address,
            include_dashboard=False if local else None,
            log_to_driver=False,  # each runner writes its job's logs/runner.log
            configure_logging=False,
        )
    except Exception as err:
        where = "a local Ray" if local else f"the Ray cluster at {address!r}"
        raise RayUnavailable(f"could not start or reach {where}: {err}") from err
    return ray


def refuse_unreachable(address: str) -> None:
    """Fail at once when nothing listens at a ``HOST:PORT`` address (``ray.init`` would retry
    for minutes); ``auto`` and other forms are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise RayUnavailable(f"could not reach the Ray cluster at {address!r}: {err}") from None


def cluster_id(ray: Any) -> str:
    """What tells this Ray cluster from another in a handle: its GCS address."""
    with contextlib.suppress(Exception):
        if address := ray.get_runtime_context().gcs_address:
            return address
    return "unknown"


class RayHandle(NamedTuple):
    cluster: str
    actor: str | None  # the actor's name; None for a claim
    host: str | None = None  # a claim's scheduler
    pid: int | None = None

    def __str__(self) -> str:
        if self.actor is not None:
            return f"{SCHEME}{self.cluster}/{self.actor}"
        return f"{SCHEME}{self.cluster}/{CLAIM}/{self.host}/{self.pid}"

    @classmethod
    def parse(cls, handle: str) -> RayHandle | None:
        """The parts of a Ray handle; None for any other string."""
        if not handle.startswith(SCHEME):
            return None
        parts = handle.removeprefix(SCHEME).split("/")
        if len(parts) == 2 and all(parts):
            return cls(parts[0], parts[1])
        if len(parts) == 4 and parts[1] == CLAIM and parts[0] and parts[2] and parts[3].isdigit():
            return cls(parts[0], None, parts[2], int(parts[3]))
        return None


class JobRunner:
    """The actor a job's runner runs in (one Ray worker process per job, as a subprocess runner
    has a process of its own). ``run`` runs the job to its end; ``interrupt`` is its SIGTERM."""

    def __init__(self, job_id: str, worker_id: str, threads: int) -> None:
        self.job_id, self.worker_id, self.threads = job_id, worker_id, threads
        self.stop_signal = threading.Event()

    def pid(self) -> int:
        return os.getpid()

    def interrupt(self) -> None:
        self.stop_signal.set()

    def run(self) -> None:
        from tuneforge.jobs.ray_ranks import launch
        from tuneforge.jobs.runner import run_job
        from tuneforge.models.threads import set_process_share

        settings = get_settings()  # from the environment the executor gave this actor
        _log_to_job_folder(settings, self.job_id)
        set_process_share(self.threads)  # the CPUs Ray gave it, not the node's
        log.info(
            "job %s: runner in Ray worker %d (%d CPUs)", self.job_id, os.getpid(), self.threads
        )
        db = Database(settings.resolved_database_url)
        try:
            run_job(db, settings, self.job_id, self.worker_id, self.stop_signal, launch)
        finally:
            db.dispose()


def _log_to_job_folder(settings: Settings, job_id: str) -> None:
    """Send this worker's output to the job's ``logs/runner.log``, where a subprocess runner's
    goes: the process is the job's alone."""
    log_dir = storage_for(settings).job_dir(job_id) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_dir / "runner.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )


@dataclass
class _Actor:
    job_id: str
    name: str
    actor: Any  # ray.actor.ActorHandle
    done: Any  # the ObjectRef of its ``run``
    stopped: bool = False  # killed by ``stop``


class RayExecutor:
    """Implements ``tuneforge.jobs.executor.Executor`` with Ray actors (see the module)."""

    def __init__(
        self, settings: Settings, worker_id: str, db: Database, *, address: str | None = None
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.db = db
        self.ray = connect(address if address is not None else settings.ray_address)
        self.cluster = cluster_id(self.ray)
        self.host = socket.gethostname()
        self._actor_class = self.ray.remote(JobRunner)
        self._actors: dict[str, _Actor] = {}  # by handle; only the ones not yet seen end
        self._exit_causes: dict[str, str | None] = {}

    def slots(self) -> list[tuple[int, ...]]:
        """How many jobs to claim at once: one per GPU of the cluster, else one per CPU;
        device-less slots, since Ray, not the scheduler, picks each job's devices."""
        resources = self.ray.cluster_resources()
        count = int(resources.get("GPU", 0)) or int(resources.get("CPU", 1))
        return [()] * max(1, count)

    # --- the Executor protocol ------------------------------------------------------------
    def claim_handle(self) -> str:
        return str(RayHandle(self.cluster, None, self.host, os.getpid()))

    def start(self, job_id: str, devices: tuple[int, ...] = ()) -> str:
        """``devices`` (the scheduler's local GPUs) are not used: Ray assigns the job's."""
        options = self.resources(job_id)
        name = f"runner-{job_id}-{uuid.uuid4().hex[:8]}"
        env = {**settings_env(self.settings), "PYTHONUNBUFFERED": "1"}
        actor = self._actor_class.options(
            name=name,
            namespace=NAMESPACE,
            max_concurrency=ACTOR_THREADS,
            max_restarts=0,  # a lost runner is recovered by the scheduler, from the store
            runtime_env={"env_vars": env},
            **options,
        ).remote(job_id, self.worker_id, max(1, int(options.get("num_cpus", 1))))
        handle = str(RayHandle(self.cluster, name))
        self._actors[handle] = _Actor(job_id, name, actor, actor.run.remote())
        log.info("job %s placed on Ray as %s with %s", job_id, name, options)
        return handle

    def resources(self, job_id: str) -> dict[str, Any]:
        """What the job's actor asks Ray for: its device as a GPU where the cluster has any,
        else as a CPU, and the memory its last attempt planned on the CPU, where there was one.
        A multi-device job's runner asks for no device (a CPU on a GPU cluster, nothing on a
        CPU cluster): its rank actors ask for one each (``ray_ranks.launch``), and a runner
        holding one would leave a job as large as the cluster unplaceable."""
        with self.db.session() as s:
            devices = max(1, repo.load_job(s, job_id).devices)
        gpus = self.ray.cluster_resources().get("GPU", 0) > 0
        options: dict[str, Any]
        if devices > 1:
            options = {"num_cpus": 1 if gpus else 0}
        elif gpus:
            options = {"num_gpus": 1, "num_cpus": 1}
        else:
            options = {"num_cpus": 1}
        plan = read_plan(plan_file(self.settings, job_id))
        if plan is not None and plan[0] == "cpu":
            options["memory"] = plan[1]
        return options

    def is_alive(self, handle: str) -> bool | None:
        if entry := self._actors.get(handle):
            ready, _ = self.ray.wait([entry.done], timeout=0)
            if not ready:
                return True
            self._forget(handle)
            return False
        parsed = RayHandle.parse(handle)
        if parsed is None or parsed.cluster != self.cluster:
            return None  # another cluster's runner, or not ours to read: the heartbeat decides
        if parsed.actor is None:
            if parsed.host != self.host:
                return None
            if parsed.pid == os.getpid():
                return False  # our claim, and no runner of ours for it
            return None if process_alive(parsed.pid) else False
        try:
            self.ray.get_actor(parsed.actor, namespace=NAMESPACE)
        except ValueError:  # no such live actor: it ended, or died with its owner
            return False
        except Exception:
            log.warning("could not ask Ray about %s", handle, exc_info=True)
            return None
        return True

    def exit_cause(self, handle: str) -> str | None:
        self.is_alive(handle)  # forgets it if it has just ended
        return self._exit_causes.get(handle)

    def interrupt(self, handle: str) -> None:
        if entry := self._actors.get(handle):
            with contextlib.suppress(Exception):  # already gone: nothing to ask
                entry.actor.interrupt.remote()

    def stop(self, handle: str) -> None:
        entry = self._actors.get(handle)
        if entry is None:
            return  # ended, or another scheduler's: not ours to kill
        entry.stopped = True
        self.ray.kill(entry.actor, no_restart=True)
        self.ray.wait([entry.done], timeout=STOP_WAIT_S)
        self._forget(handle)

    def worker_pid(self, handle: str) -> int:
        """The pid of the Ray worker process running the job behind ``handle`` (ours)."""
        return self.ray.get(self._actors[handle].actor.pid.remote())

    def _forget(self, handle: str) -> None:
        entry = self._actors.pop(handle)
        cause = None
        try:
            self.ray.get(entry.done, timeout=0)
            log.info("runner of %s ended", entry.job_id)
        except Exception as err:
            log.warning("runner of %s ended: %s", entry.job_id, err)
            if not entry.stopped and _killed_for_memory(self.ray, err):
                cause = OUT_OF_MEMORY
        with contextlib.suppress(Exception):  # frees its resources if it still holds them
            self.ray.kill(entry.actor, no_restart=True)
        with contextlib.suppress(Exception):  # and its ranks', if it died holding them
            remove_rank_group(self.ray, entry.name)
        self._exit_causes[handle] = cause
        while len(self._exit_causes) > REMEMBERED_EXITS:
            del self._exit_causes[next(iter(self._exit_causes))]


def _killed_for_memory(ray: Any, err: Exception) -> bool:
    """Whether Ray's memory monitor ended the runner (a retry would end the same way)."""
    if isinstance(err, ray.exceptions.OutOfMemoryError):
        return True
    message = str(err).lower()
    return isinstance(err, ray.exceptions.RayActorError) and (
        "low on memory" in message or "out of memory" in message
    )

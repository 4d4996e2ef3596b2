"""The subprocess executor: a runner per job, ``python -m tuneforge.jobs.runner JOB_ID``, in
its own process group, with the devices the scheduler gave it.

The runner is tied to the process that started it (Linux ``PR_SET_PDEATHSIG``): when a server
or worker dies, even by ``kill -9``, its runners get SIGTERM, which is also what a graceful
stop sends (``interrupt``). A runner stops on SIGTERM within the shutdown grace period, saving
a resume point if it can, and its job is requeued without the attempt counting (see
``tuneforge.jobs.runner``). A runner that outlived its parent for longer would keep training
with nobody to supervise it. Linux ties the signal to the parent *thread*: runners must be
started from a thread that lives as long as the process (the scheduler's), never from a
short-lived one.

A handle is ``subprocess://HOST/SCHEDULER_PID/RUNNER_PID`` (``subprocess://HOST/SCHEDULER_PID``
for a claim whose runner is not started yet). Because runners die with their scheduler, a
scheduler on the same host can tell a lost runner from a live one by looking at both pids; a
scheduler on another host cannot, and says so (None).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from tuneforge.config import Settings, settings_env
from tuneforge.jobs.cpu_share import share_file
from tuneforge.jobs.out_of_memory import ERROR_CODE as OUT_OF_MEMORY
from tuneforge.jobs.out_of_memory import killed_by_oom, oom_kill_count
from tuneforge.models.threads import SHARE_FILE_ENV
from tuneforge.storage import storage_for

log = logging.getLogger("tuneforge.executor")

PR_SET_PDEATHSIG = 1
SCHEME = "subprocess://"
RUNNER_MODULE = "tuneforge.jobs.runner"


def _die_with_parent() -> None:  # runs in the child between fork and exec
    # SIGTERM stays blocked (and so pending) across exec: the runner takes it with sigwait
    # (runner.stop_on_sigterm). One that arrived while the runner imported torch would otherwise
    # kill it without requeueing.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    # Not on Linux: nothing to do; the heartbeat timeout recovers the job instead.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def process_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_runner_process(pid: int) -> bool:
    """Whether ``pid`` is a live runner (not a process that was given a dead runner's pid)."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: ask the kernel about the pid alone
        return process_alive(pid)
    try:
        # "PID (NAME) STATE ...": NAME may hold spaces and parentheses, the state follows the last.
        state = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        command = (proc / str(pid) / "cmdline").read_bytes()
    except (OSError, IndexError):  # gone
        return False
    if state in ("Z", "X"):  # exited, not yet reaped by whoever adopted it: not running
        return False
    return RUNNER_MODULE.encode() in command.split(b"\0")


class SubprocessHandle(NamedTuple):
    host: str
    scheduler_pid: int
    runner_pid: int | None  # None: claimed, the runner not started yet

    def __str__(self) -> str:
        runner = f"/{self.runner_pid}" if self.runner_pid is not None else ""
        return f"{SCHEME}{self.host}/{self.scheduler_pid}{runner}"

    @classmethod
    def parse(cls, handle: str) -> SubprocessHandle | None:
        """The parts of a subprocess handle; None for any other string."""
        if not handle.startswith(SCHEME):
            return None
        host, *pids = handle.removeprefix(SCHEME).split("/")
        if not host or len(pids) not in (1, 2) or not all(pid.isdigit() for pid in pids):
            return None
        return cls(host, int(pids[0]), int(pids[1]) if len(pids) == 2 else None)


# How many ended runners' causes an executor remembers (recovery asks right after reaping).
REMEMBERED_EXITS = 256


@dataclass
class _Runner:
    job_id: str
    process: subprocess.Popen
    oom_kills_at_start: int | None = None  # the cgroup's OOM-kill count when it started
    stopped: bool = False  # killed by ``stop``: a SIGKILL of ours, not the OOM killer's


class SubprocessExecutor:
    """Implements ``tuneforge.jobs.executor.Executor`` with local processes.

    ``host`` and ``scheduler_pid`` name the scheduler that owns this executor (by default this
    machine and this process); tests set them to stand for another scheduler.
    """

    def __init__(
        self,
        settings: Settings,
        worker_id: str,
        *,
        host: str | None = None,
        scheduler_pid: int | None = None,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.host = host or socket.gethostname()
        self.scheduler_pid = scheduler_pid or os.getpid()
        self._runners: dict[str, _Runner] = {}  # by handle; only the ones not yet seen exit
        self._exit_causes: dict[str, str | None] = {}  # by handle, for runners seen exit

    # --- the Executor protocol ------------------------------------------------------------
    def claim_handle(self) -> str:
        return str(SubprocessHandle(self.host, self.scheduler_pid, None))

    def start(self, job_id: str, devices: tuple[int, ...] = ()) -> str:
        oom_kills = oom_kill_count()
        process = self._spawn(job_id, devices)
        handle = str(SubprocessHandle(self.host, self.scheduler_pid, process.pid))
        self._runners[handle] = _Runner(job_id, process, oom_kills)
        return handle

    def exit_cause(self, handle: str) -> str | None:
        self.is_alive(handle)  # reaps it if it has just exited
        return self._exit_causes.get(handle)

    def is_alive(self, handle: str) -> bool | None:
        if runner := self._runners.get(handle):
            if runner.process.poll() is None:
                return True
            self._forget(handle)
            return False
        parsed = SubprocessHandle.parse(handle)
        if parsed is None or parsed.host != self.host:
            return None  # another machine's runner, or not ours to read: the heartbeat decides
        if parsed.scheduler_pid == self.scheduler_pid:
            return False  # ours, but not among our runners: exited, lost, or never started
        if parsed.runner_pid is None:
            # A claim: gone with its scheduler, else a live scheduler starting its runner.
            return None if process_alive(parsed.scheduler_pid) else False
        # A runner outlives its dead scheduler by at most the grace period it has to save.
        return is_runner_process(parsed.runner_pid)

    def interrupt(self, handle: str) -> None:
        runner = self._runners.get(handle)
        if runner is not None and runner.process.poll() is None:
            runner.process.send_signal(signal.SIGTERM)  # the runner alone: it stops its own

    def stop(self, handle: str) -> None:
        runner = self._runners.get(handle)
        if runner is None:
            return  # exited, or another scheduler's: its pid may be reused, never kill it
        if runner.process.poll() is None:
            runner.stopped = True
            os.killpg(runner.process.pid, signal.SIGKILL)  # the runner and its children
            runner.process.wait()
        self._forget(handle)

    # --- running a process ----------------------------------------------------------------
    def command(self, job_id: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            RUNNER_MODULE,
            job_id,
            "--worker-id",
            self.worker_id,
        ]

    def _spawn(self, job_id: str, devices: tuple[int, ...]) -> subprocess.Popen:
        log_dir = storage_for(self.settings).job_dir(job_id) / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **settings_env(self.settings), "PYTHONUNBUFFERED": "1"}
        env[SHARE_FILE_ENV] = str(share_file(self.settings, job_id))  # its share of the cores
        if devices:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, devices))
        with (log_dir / "runner.log").open("ab") as runner_log:
            return subprocess.Popen(
                self.command(job_id),
                stdout=runner_log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=Path.cwd(),
                start_new_session=True,  # its own process group: a cancel can kill all of it
                preexec_fn=_die_with_parent,
            )

    def _forget(self, handle: str) -> None:
        runner = self._runners.pop(handle)
        code = runner.process.returncode
        log.info("runner of %s exited with %s", runner.job_id, code)
        sigkill = code == -signal.SIGKILL and not runner.stopped
        cause = None
        if killed_by_oom(sigkill, runner.oom_kills_at_start, oom_kill_count()):
            cause = OUT_OF_MEMORY
            log.warning("runner of %s was killed by the out-of-memory killer", runner.job_id)
        self._exit_causes[handle] = cause
        while len(self._exit_causes) > REMEMBERED_EXITS:
            del self._exit_causes[next(iter(self._exit_causes))]

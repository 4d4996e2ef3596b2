"""Starting a job's runner: a subprocess per job, in its own process group, with the devices
the scheduler gave it.

The runner is tied to the process that started it (Linux ``PR_SET_PDEATHSIG``): when a server
or worker dies, even by ``kill -9``, its runners die with it, and the job is requeued and
resumed from its last checkpoint when a scheduler next looks. A runner that outlived its
parent would keep training with nobody to supervise it. Linux ties the signal to the parent
*thread*: runners must be started from a thread that lives as long as the process (the
scheduler's), never from a short-lived one.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tuneforge.config import Settings, settings_env

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    # Not on Linux: nothing to do; the heartbeat timeout recovers the job instead.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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


@dataclass
class RunningJob:
    job_id: str
    process: subprocess.Popen
    devices: tuple[int, ...]


class SubprocessExecutor:
    def __init__(self, settings: Settings, worker_id: str) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.running: dict[str, RunningJob] = {}

    def start(self, job_id: str, devices: tuple[int, ...] = ()) -> RunningJob:
        log_dir = self.settings.jobs_dir / job_id / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **settings_env(self.settings), "PYTHONUNBUFFERED": "1"}
        if devices:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, devices))
        with (log_dir / "runner.log").open("ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tuneforge.jobs.runner",
                    job_id,
                    "--worker-id",
                    self.worker_id,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=Path.cwd(),
                start_new_session=True,  # its own process group: a cancel can kill all of it
                preexec_fn=_die_with_parent,
            )
        running = RunningJob(job_id, process, devices)
        self.running[job_id] = running
        return running

    def reap(self) -> list[RunningJob]:
        """Forget the runners that have exited; return them."""
        done = [r for r in self.running.values() if r.process.poll() is not None]
        for finished in done:
            del self.running[finished.job_id]
        return done

    def kill(self, job_id: str) -> None:
        running = self.running.get(job_id)
        if running and running.process.poll() is None:
            os.killpg(running.process.pid, signal.SIGKILL)
            running.process.wait()

    def stop_all(self) -> None:
        for job_id in list(self.running):
            self.kill(job_id)
        self.reap()

    def busy_devices(self) -> Counter[int]:
        """How many runners use each device."""
        return Counter(device for r in self.running.values() for device in r.devices)

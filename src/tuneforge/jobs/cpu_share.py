"""A scheduler's split of the CPU cores between its runners and its process's inference.

Each runner of a large model on the CPU uses ``cores // consumers`` threads, where the
consumers are the scheduler's running jobs plus its own process's inference while that holds a
model on the CPU; the inference gets what is left. So one job alone gets every core, and the
threads of training and serving together never exceed the cores, unless the consumers outnumber
the cores (see :func:`split`). Each runner reads its share
from a file in its job's folder (``share_file``; ``models/threads.py`` re-reads it before each
step), so a share changes while a job runs. The scheduler writes that file and removes it once
the runner is gone, so an ended job's folder keeps nothing of it. Schedulers in other processes
on the same machine (a ``tuneforge worker`` beside a server) do not see each other's runners.
"""

from __future__ import annotations

import os
from pathlib import Path

from tuneforge.config import Settings
from tuneforge.storage import storage_for

SHARE_FILE = "cpu_threads"


def share_file(settings: Settings, job_id: str) -> Path:
    """The file a job's runner reads its thread count from."""
    return storage_for(settings).job_dir(job_id) / SHARE_FILE


def split(cores: int, runners: int, serving: bool) -> tuple[int, int]:
    """(threads per runner, threads of the inference).

    A thread each is the floor: a runner cannot run on zero, nor can the inference. So when the
    runners plus the inference outnumber the cores, each still gets one and the total exceeds
    the cores (``split(2, 2, True)`` is ``(1, 1)``: 3 threads on 2 cores)."""
    consumers = runners + (1 if serving else 0)
    each = max(1, cores // max(consumers, 1))
    return each, max(1, cores - each * runners)


def write_share(path: Path, threads: int) -> None:
    """Atomically: a runner must never read a half-written number."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(f"{threads}\n")
    os.replace(partial, path)


def remove_share(path: Path) -> None:
    """The runner is gone: its share goes too (a share written as the run freed its folder
    would otherwise outlive the run)."""
    path.unlink(missing_ok=True)

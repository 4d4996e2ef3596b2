"""How many threads torch uses on the CPU, so that training and serving share the cores.

A model under ``SMALL_MODEL_PARAMETERS`` runs on one thread: its matrices are too small for
intra-op threads to pay for their synchronisation (on 2 cores one thread trained the tiny
models several times faster than two: a test job took 25 s against 184 s on a loaded machine).
A process with a larger model on the CPU gets its *share* of the cores (``machine.cpu_count``):

* a job's runner: what its scheduler writes into the file ``TUNEFORGE_CPU_THREADS_FILE`` names,
  re-read (when it changes) before every training step, so a runner gives up cores when another
  job starts or the server starts serving a model, and takes them back after;
* the server's inference: what its scheduler sets in-process (``set_process_share``), applied
  before each generation;
* any other process (``generate``, ``evaluate``, a runner nobody shares with): every core.

The models counted are the ones this process still holds: each is known by a weak reference,
so once a server's cache evicts a large model and its last request ends, the tiny models it
still serves go back to one thread.

The scheduler's split is in ``tuneforge.jobs.cpu_share``.
"""

from __future__ import annotations

import os
import threading
import weakref
from functools import cache
from pathlib import Path

from tuneforge.machine import cpu_count

SHARE_FILE_ENV = "TUNEFORGE_CPU_THREADS_FILE"
SMALL_MODEL_PARAMETERS = 50_000_000

_lock = threading.Lock()
_parameters_on_cpu: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> count
_process_share: int | None = None
_file_cache: tuple[str, int, int | None] | None = None  # (path, mtime_ns, threads)


@cache
def _cores() -> int:
    return cpu_count()


def set_process_share(threads: int | None) -> None:
    """The cores this process's inference may use (None: all of them)."""
    global _process_share
    _process_share = threads


def _file_share(path: str) -> int | None:
    global _file_cache
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return None
    if _file_cache is not None and _file_cache[:2] == (path, mtime):
        return _file_cache[2]
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    threads = int(text) if text.isdigit() and int(text) > 0 else None
    _file_cache = (path, mtime, threads)
    return threads


def cpu_share() -> int:
    """The threads a large model on the CPU may use in this process now: one rank of a
    multi-device job on the CPU takes its part of the job's share (torch's launcher tells each
    rank how many it starts on this machine, ``LOCAL_WORLD_SIZE``)."""
    path = os.environ.get(SHARE_FILE_ENV)
    threads = _file_share(path) if path else None
    share = threads or _process_share or _cores()
    return max(1, share // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def largest_model_on_cpu() -> int:
    """The parameters of the largest model this process holds on the CPU (0: none)."""
    with _lock:
        return max(_parameters_on_cpu.values(), default=0)


def fit_cpu_threads(model=None) -> None:
    """Set torch's threads for the models this process holds on the CPU: one while every one
    is small, else this process's share. With ``model`` (just loaded), count it first; without,
    re-apply the share (cheap: a stat of the share file), as a runner does before each step
    and the inference before each generation."""
    import torch

    if model is not None:
        if next(model.parameters()).device.type != "cpu":
            return
        parameters = sum(p.numel() for p in model.parameters())
        with _lock:
            _parameters_on_cpu[model] = parameters
    largest = largest_model_on_cpu()
    if largest == 0:
        return  # no model on the CPU here: leave torch alone
    wanted = 1 if largest < SMALL_MODEL_PARAMETERS else cpu_share()
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)

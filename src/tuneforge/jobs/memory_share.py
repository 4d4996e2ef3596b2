"""A model in training counts against the inference's memory budget.

A runner whose training is sure to start writes its memory plan's device and total into its
job's folder (``plan_file``; ``StoreObserver.on_memory_plan``). Every round its scheduler sums
the plans of its running jobs per device and hands the sums to its process's inference, whose
cache of loaded models then holds at most its budget less what training on the same device
planned for (``inference/model_cache.ModelCache.reserve``). Like the CPU share
(``cpu_share.py``), a scheduler sees only its own runners.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tuneforge.config import Settings
from tuneforge.storage import storage_for

PLAN_FILE = "memory_plan.json"


def plan_file(settings: Settings, job_id: str) -> Path:
    """The file a job's runner writes its memory plan to."""
    return storage_for(settings).job_dir(job_id) / PLAN_FILE


def write_plan(path: Path, device: str, total_bytes: int) -> None:
    """Atomically: a scheduler must never read half a plan."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps({"device": device, "total_bytes": total_bytes}))
    os.replace(partial, path)


def read_plan(path: Path) -> tuple[str, int] | None:
    """(device, total bytes) of a runner's plan; None before it wrote one (still loading)."""
    try:
        plan = json.loads(path.read_text())
        return str(plan["device"]), int(plan["total_bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def device_key(device: str, devices: tuple[int, ...]) -> str:
    """The device a runner's plan is on, as the scheduler's process names it: ``cpu``, or the
    GPU of its slot (the runner itself sees that GPU as its only one, ``cuda``)."""
    if device == "cpu":
        return "cpu"
    return f"cuda:{devices[0] if devices else 0}"


def planned_by_device(settings: Settings, runners: Iterable[tuple[str, tuple[int, ...]]]) -> dict:
    """The memory the given runners (job id, devices) planned for, summed per device."""
    planned: Counter[str] = Counter()
    for job_id, devices in runners:
        plan = read_plan(plan_file(settings, job_id))
        if plan is not None:
            device, total = plan
            planned[device_key(device, devices)] += total
    return dict(planned)

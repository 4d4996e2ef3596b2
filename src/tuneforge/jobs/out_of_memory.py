"""Telling a runner the kernel's out-of-memory killer ended from one that was merely lost.

The OOM killer ends a process with SIGKILL, which tuneforge itself sends only when it stops a
runner (``SubprocessExecutor.stop``). So a runner that died of a SIGKILL nobody here sent was,
most likely, out of memory; the cgroup's ``oom_kill`` counter, where it can be read (cgroup v2
``memory.events``, v1 ``memory.oom_control``), decides: risen while the runner ran, it was the
OOM killer; unchanged, someone else's ``kill -9``. Either way a new attempt with the same
settings would be killed again, so an OOM-killed job fails at once, saying what to change.
"""

from __future__ import annotations

from pathlib import Path

from tuneforge.machine import CGROUP_ROOT, PROC_CGROUP, cgroup_files

ERROR_CODE = "out_of_memory"


def oom_kill_count(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> int | None:
    """How many processes of this process's cgroup the OOM killer has ended; None where no
    counter can be read (not Linux, an old kernel, a hidden /sys)."""
    for file in cgroup_files("memory.events", "memory", "memory.oom_control", proc_cgroup, root):
        try:
            lines = file.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
    return None


def killed_by_oom(
    killed_by_sigkill: bool, count_before: int | None, count_after: int | None
) -> bool:
    """Whether a runner that ended with SIGKILL nobody here sent was killed for memory."""
    if not killed_by_sigkill:
        return False
    if count_before is None or count_after is None:
        return True  # no counter to ask: the OOM killer is by far the likeliest sender
    return count_after > count_before


def out_of_memory_message(mode: str | None = None) -> str:
    """What failed, and what to change."""
    lighter = ["a smaller batch_size", "a shorter max_seq_length"]
    if mode == "full":
        lighter.append("a LoRA adapter (mode peft) instead of all weights")
    lighter.append("a smaller base model")
    choices = f"{', '.join(lighter[:-1])} or {lighter[-1]}"
    return (
        "out of memory: the kernel's out-of-memory killer ended the runner (SIGKILL) while it "
        f"trained; retrying with the same settings would end the same way. Try {choices}, or "
        "stop other jobs and models using this machine's memory"
    )

"""A python grader's ``grade(sample, item)``, run in a child process of its own, within limits:
CPU seconds and wall time, address space, no files written past 1 MB, and no network.

No network, twice over: the child gets a network namespace of its own where the kernel allows
one (``unshare``; a namespace with no interface but loopback), and an audit hook refuses every
socket, subprocess and ``ctypes`` call before the grader's code runs (audit hooks cannot be
removed once added). The operator turns python graders on (``TUNEFORGE_PYTHON_GRADERS``); they
are off by default, as arbitrary code from an API caller should be.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from tuneforge.config import Settings

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
MAX_OUTPUT_BYTES = 1 << 20

# Runs in the child: read the source, sample and item from stdin, refuse what reaches out, call
# grade, print the score as JSON.
CHILD = r"""
import json, sys
request = json.loads(sys.stdin.read())
BLOCKED = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.fork",
           "os.spawn", "ctypes.", "pty.")
def refuse(event, args):
    if event.startswith(BLOCKED):
        raise PermissionError(f"{event} is not allowed in a grader")
sys.addaudithook(refuse)
try:
    scope = {"__name__": "grader"}
    exec(compile(request["source"], "<grader>", "exec"), scope)
    score = scope["grade"](request["sample"], request["item"])
    result = {"score": float(score)}
except BaseException as err:
    result = {"error": f"{type(err).__name__}: {err}"}
sys.stdout.write(json.dumps(result))
"""


@dataclass(frozen=True)
class PythonLimits:
    enabled: bool = False
    timeout_s: float = 10.0
    memory_bytes: int = 512 << 20

    @classmethod
    def of(cls, settings: Settings) -> PythonLimits:
        """The operator's: TUNEFORGE_PYTHON_GRADERS and its limits."""
        return cls(
            enabled=settings.python_graders,
            timeout_s=settings.python_grader_timeout_s,
            memory_bytes=settings.python_grader_memory_bytes,
        )


class GraderRuntimeError(RuntimeError):
    pass


def run_python(source: str, sample: dict[str, Any], item: dict[str, Any], limits: PythonLimits):
    """``grade(sample, item)`` as a float; GraderRuntimeError saying why there is none."""
    if not limits.enabled:
        raise GraderRuntimeError(
            "python graders are off on this server (the operator turns them on with "
            "TUNEFORGE_PYTHON_GRADERS=1)"
        )
    request = json.dumps({"source": source, "sample": sample, "item": item})
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", CHILD],
            input=request,
            capture_output=True,
            text=True,
            timeout=limits.timeout_s,
            preexec_fn=lambda: _limit(limits),
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0"},
        )
    except subprocess.TimeoutExpired:
        raise GraderRuntimeError(f"grade() ran past {limits.timeout_s:g} s") from None
    if done.returncode == -signal.SIGXCPU:
        raise GraderRuntimeError(f"grade() ran past {limits.timeout_s:g} s of CPU time")
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        if "MemoryError" in done.stderr or done.returncode in (-9, 137):
            detail = [f"out of memory: it may use {limits.memory_bytes >> 20} MiB"]
        raise GraderRuntimeError(f"grade() failed: {detail[0]}")
    try:
        result = json.loads(done.stdout[:MAX_OUTPUT_BYTES])
    except ValueError:
        raise GraderRuntimeError("grade() printed over its result") from None
    if "error" in result:
        if result["error"].startswith("MemoryError"):
            raise GraderRuntimeError(
                f"grade() ran out of memory: it may use {limits.memory_bytes >> 20} MiB"
            )
        raise GraderRuntimeError(f"grade() raised {result['error']}")
    return result["score"]


def _limit(limits: PythonLimits) -> None:
    """In the child, before it runs Python: its limits and, where allowed, its own network."""
    memory = limits.memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = max(1, int(limits.timeout_s))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:  # root: a new network namespace
        libc.unshare(CLONE_NEWUSER | CLONE_NEWNET)  # else through a user namespace, if allowed

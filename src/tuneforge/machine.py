"""What this machine lets tuneforge use: its memory and its cores, within the limits of the
container (cgroup, v2 or v1) the process runs in, and the cgroup's counters."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
# cgroup v1 writes "no limit" as the largest page-aligned 64-bit number.
_V1_UNLIMITED = 1 << 62


def cgroup_files(
    v2_name: str,
    v1_controller: str,
    v1_name: str,
    proc_cgroup: Path = PROC_CGROUP,
    root: Path = CGROUP_ROOT,
) -> list[Path]:
    """The files of this process's cgroup named so, most specific first. Inside a container
    the path /proc names may not exist under the mount; the mount's root then stands in."""
    try:
        text = proc_cgroup.read_text()
    except OSError:
        return []
    files = []
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        relative = path.strip().lstrip("/")
        if hierarchy == "0" and controllers == "":
            files += [root / relative / v2_name, root / v2_name]
        elif v1_controller in controllers.split(","):
            mount = root / controllers  # e.g. /sys/fs/cgroup/cpu,cpuacct
            if not mount.is_dir():
                mount = root / v1_controller
            files += [mount / relative / v1_name, mount / v1_name]
    return files


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def physical_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system that says
        return None


def cgroup_memory_limit_bytes(
    proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT
) -> int | None:
    for file in cgroup_files("memory.max", "memory", "memory.limit_in_bytes", proc_cgroup, root):
        value = _read(file)
        if value is None:
            continue
        if value.isdigit() and int(value) < _V1_UNLIMITED:
            return int(value)
        return None  # "max", or v1's unlimited: the first file found decides
    return None


def memory_bytes() -> int | None:
    """The RAM this process may use: the machine's, or its container's limit when lower."""
    known = [m for m in (physical_memory_bytes(), cgroup_memory_limit_bytes()) if m]
    return min(known) if known else None


def cgroup_memory_used_bytes(
    proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT
) -> int | None:
    """The container's working set: what its processes use, less the page cache the kernel
    can drop at once (``inactive_file``), as ``docker stats`` and the kubelet count it."""
    for file in cgroup_files(
        "memory.current", "memory", "memory.usage_in_bytes", proc_cgroup, root
    ):
        value = _read(file)
        if value is None or not value.isdigit():
            continue
        # v1's usage counts the cgroups below too, and so does its stat's total_ line
        wanted = "inactive_file" if file.name == "memory.current" else "total_inactive_file"
        inactive = 0
        for line in (_read(file.with_name("memory.stat")) or "").splitlines():
            key, _, number = line.partition(" ")
            if key == wanted and number.strip().isdigit():
                inactive = int(number)
                break
        return max(0, int(value) - inactive)
    return None


def meminfo_available_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """The kernel's estimate of the RAM that can be had without swapping (MemAvailable)."""
    for line in (_read(meminfo) or "").splitlines():
        key, _, value = line.partition(":")
        if key == "MemAvailable" and value.split() and value.split()[0].isdigit():
            return int(value.split()[0]) * 1024
    return None


def available_memory_bytes() -> int | None:
    """The RAM a new allocation can still get: the machine's MemAvailable, and within a
    container with a limit, that limit less the container's working set; the lower counts."""
    known = [meminfo_available_bytes()]
    limit, used = cgroup_memory_limit_bytes(), cgroup_memory_used_bytes()
    if limit is not None and used is not None:
        known.append(max(0, limit - used))
    known = [k for k in known if k is not None]
    return min(known) if known else None


def resident_bytes(statm: Path = Path("/proc/self/statm")) -> int | None:
    """This process's resident set now."""
    fields = (_read(statm) or "").split()
    if len(fields) < 2 or not fields[1].isdigit():
        return None
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


def cgroup_cpu_limit(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> int | None:
    """The container's CPU quota in whole cores (rounded up), if it has one."""
    for file in cgroup_files("cpu.max", "cpu", "cpu.cfs_quota_us", proc_cgroup, root):
        value = _read(file)
        if value is None:
            continue
        if file.name == "cpu.max":  # "QUOTA PERIOD" or "max PERIOD"
            quota, _, period = value.partition(" ")
        else:
            quota, period = value, _read(file.with_name("cpu.cfs_period_us")) or ""
        if quota.isdigit() and period.strip().isdigit() and int(period) > 0:
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    return None


def cpu_count() -> int:
    """The cores this process may run on: its CPU affinity, within its container's quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return max(1, min(cores, limit) if limit else cores)


def gpu_count() -> int:
    """The CUDA devices this process sees (none without torch or CUDA)."""
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count()

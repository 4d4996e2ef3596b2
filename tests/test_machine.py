"""What the machine lets tuneforge use, read within its container's (cgroup's) limits."""

from __future__ import annotations

import os
from pathlib import Path

from tuneforge import machine


def cgroup(tmp_path: Path, line: str, files: dict[str, str]) -> tuple[Path, Path]:
    """A /proc/self/cgroup of one ``line`` and a cgroup mount holding ``files``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "proc-cgroup"
    proc.write_text(line + "\n")
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return proc, root


def test_a_cgroup_v2_memory_limit_is_read_and_max_is_none(tmp_path):
    proc, root = cgroup(tmp_path, "0::/job", {"job/memory.max": "4294967296\n"})
    assert machine.cgroup_memory_limit_bytes(proc, root) == 4 << 30
    proc, root = cgroup(tmp_path / "b", "0::/job", {"job/memory.max": "max\n"})
    assert machine.cgroup_memory_limit_bytes(proc, root) is None


def test_a_cgroup_v1_memory_limit_is_read_and_unlimited_is_none(tmp_path):
    limited = {"memory/docker/x/memory.limit_in_bytes": str(2 << 30)}
    proc, root = cgroup(tmp_path, "4:memory:/docker/x", limited)
    assert machine.cgroup_memory_limit_bytes(proc, root) == 2 << 30
    unlimited = {"memory/docker/x/memory.limit_in_bytes": "9223372036854771712"}
    proc, root = cgroup(tmp_path / "b", "4:memory:/docker/x", unlimited)
    assert machine.cgroup_memory_limit_bytes(proc, root) is None


def test_a_cpu_quota_is_whole_cores_rounded_up(tmp_path):
    proc, root = cgroup(tmp_path, "0::/job", {"job/cpu.max": "250000 100000\n"})
    assert machine.cgroup_cpu_limit(proc, root) == 3
    proc, root = cgroup(tmp_path / "b", "0::/job", {"job/cpu.max": "max 100000\n"})
    assert machine.cgroup_cpu_limit(proc, root) is None
    v1 = {"cpu,cpuacct/cpu.cfs_quota_us": "100000", "cpu,cpuacct/cpu.cfs_period_us": "100000"}
    proc, root = cgroup(tmp_path / "c", "3:cpu,cpuacct:/", v1)
    assert machine.cgroup_cpu_limit(proc, root) == 1


def test_memory_is_the_lower_of_the_machines_and_the_containers(monkeypatch):
    monkeypatch.setattr(machine, "physical_memory_bytes", lambda: 64 << 30)
    monkeypatch.setattr(machine, "cgroup_memory_limit_bytes", lambda: 16 << 30)
    assert machine.memory_bytes() == 16 << 30
    monkeypatch.setattr(machine, "cgroup_memory_limit_bytes", lambda: None)
    assert machine.memory_bytes() == 64 << 30


def test_cores_are_the_affinity_within_the_quota(monkeypatch):
    monkeypatch.setattr(machine.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(machine, "cgroup_cpu_limit", lambda: 2)
    assert machine.cpu_count() == 2
    monkeypatch.setattr(machine, "cgroup_cpu_limit", lambda: None)
    assert machine.cpu_count() == 4


def test_a_cgroups_working_set_leaves_out_the_page_cache_it_can_drop(tmp_path):
    v2 = {
        "job/memory.current": str(3 << 30),
        "job/memory.stat": "anon 1\ninactive_file 1073741824\n",
    }
    proc, root = cgroup(tmp_path, "0::/job", v2)
    assert machine.cgroup_memory_used_bytes(proc, root) == 2 << 30
    v1 = {
        "memory/docker/x/memory.usage_in_bytes": str(3 << 30),
        "memory/docker/x/memory.stat": "inactive_file 5\ntotal_inactive_file 2147483648\n",
    }
    proc, root = cgroup(tmp_path / "b", "4:memory:/docker/x", v1)
    assert machine.cgroup_memory_used_bytes(proc, root) == 1 << 30


def test_memavailable_and_the_resident_set_are_read_from_proc(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:    2097152 kB\n")
    assert machine.meminfo_available_bytes(meminfo) == 2 << 30
    statm = tmp_path / "statm"
    statm.write_text("1000 256 10 1 0 100 0\n")
    assert machine.resident_bytes(statm) == 256 * os.sysconf("SC_PAGE_SIZE")
    assert machine.available_memory_bytes() > 0  # this machine's, read for real

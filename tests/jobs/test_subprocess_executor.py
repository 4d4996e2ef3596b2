"""The subprocess executor with real processes: its handles, and what it says about them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tuneforge.config import Settings
from tuneforge.jobs.subprocess_executor import (
    RUNNER_MODULE,
    SubprocessExecutor,
    SubprocessHandle,
    is_runner_process,
    process_alive,
)
from tuneforge.storage import storage_for

HOST = socket.gethostname()


class ScriptExecutor(SubprocessExecutor):
    """Runs a short Python script instead of the runner (its command line names the runner
    module, as a runner's does: that is how another scheduler recognises a runner's pid)."""

    def __init__(self, settings: Settings, script: str, **identity) -> None:
        super().__init__(settings, "w", **identity)
        self.script = script

    def command(self, job_id: str) -> list[str]:
        return [sys.executable, "-c", self.script, RUNNER_MODULE]


def wait_until_gone(executor: SubprocessExecutor, handle: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while executor.is_alive(handle):
        assert time.monotonic() < deadline, "the runner did not exit"
        time.sleep(0.05)


def test_handles_name_host_scheduler_and_runner() -> None:
    started = SubprocessHandle("gpu-3.example", 41, 4242)
    claimed = SubprocessHandle("gpu-3.example", 41, None)
    assert str(started) == "subprocess://gpu-3.example/41/4242"
    assert str(claimed) == "subprocess://gpu-3.example/41"
    assert SubprocessHandle.parse(str(started)) == started
    assert SubprocessHandle.parse(str(claimed)) == claimed


@pytest.mark.parametrize(
    "handle",
    ["", "k8s://ns/job", "subprocess://", "subprocess://host", "subprocess:///1/2",
     "subprocess://host/x/2", "subprocess://host/1/2/3", "subprocess://host/1/-2"],
)  # fmt: skip
def test_other_strings_are_no_subprocess_handles(handle: str) -> None:
    assert SubprocessHandle.parse(handle) is None


def test_a_runner_gets_its_devices_and_a_log_and_is_gone_once_it_exits(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    script = "import os; print('devices', os.environ['CUDA_VISIBLE_DEVICES'])"
    executor = ScriptExecutor(settings, script)
    handle = executor.start("ftjob-1", (1, 3))
    parsed = SubprocessHandle.parse(handle)
    assert parsed is not None and (parsed.host, parsed.scheduler_pid) == (HOST, os.getpid())
    wait_until_gone(executor, handle)
    assert executor.is_alive(handle) is False  # reaped: gone for good
    log = (storage_for(settings).job_dir("ftjob-1") / "logs" / "runner.log").read_text()
    assert "devices 1,3" in log


def test_stop_kills_a_running_runner(tmp_path) -> None:
    executor = ScriptExecutor(Settings(data_dir=tmp_path), "import time; time.sleep(60)")
    handle = executor.start("ftjob-1")
    runner_pid = SubprocessHandle.parse(handle).runner_pid
    assert executor.is_alive(handle) is True
    # Another scheduler on this host (our parent stands for it) sees the runner alive too.
    neighbour = SubprocessExecutor(Settings(data_dir=tmp_path), "w2", scheduler_pid=os.getppid())
    assert neighbour.is_alive(handle) is True
    neighbour.stop(handle)  # not its runner: left alone
    assert executor.is_alive(handle) is True

    executor.stop(handle)
    assert executor.is_alive(handle) is False
    assert not process_alive(runner_pid)
    assert neighbour.is_alive(handle) is False
    executor.stop(handle)  # already gone: nothing to do


# A runner's stand-in that, on SIGTERM, writes where it was told and exits 75. It writes beside
# the marker and renames, as a resume point is saved: a test polling for the marker never reads
# it half-written.
SAVES_ON_SIGTERM = """
import signal, sys, time
from pathlib import Path
def save(signum, frame):
    marker = Path(sys.argv[1])
    partial = marker.with_name(marker.name + ".partial")
    partial.write_text("resume point")
    partial.replace(marker)
    sys.exit(75)
time.sleep(float(sys.argv[2]))  # importing, as a real runner does before it waits for SIGTERM
print("ready", flush=True)
signal.sigwait({signal.SIGTERM})  # as runner.stop_on_sigterm does (SIGTERM arrives blocked)
save(signal.SIGTERM, None)
"""


class SavingExecutor(ScriptExecutor):
    def __init__(self, settings: Settings, marker, import_s: float = 0.0) -> None:
        super().__init__(settings, SAVES_ON_SIGTERM)
        self.marker, self.import_s = marker, import_s

    def command(self, job_id: str) -> list[str]:
        script_args = [str(self.marker), str(self.import_s), RUNNER_MODULE]
        return [sys.executable, "-c", self.script, *script_args]


def wait_for_ready(settings: Settings, job_id: str) -> None:
    log = storage_for(settings).job_dir(job_id) / "logs" / "runner.log"
    deadline = time.monotonic() + 30
    while not (log.exists() and "ready" in log.read_text()):
        assert time.monotonic() < deadline, "the runner did not start"
        time.sleep(0.05)


def test_interrupt_asks_the_runner_to_save_and_returns_at_once(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    executor = SavingExecutor(settings, tmp_path / "saved")
    handle = executor.start("ftjob-1")
    wait_for_ready(settings, "ftjob-1")
    executor.interrupt(handle)
    wait_until_gone(executor, handle)
    assert (tmp_path / "saved").read_text() == "resume point"


def test_a_sigterm_that_comes_while_the_runner_imports_waits_for_its_handler(tmp_path) -> None:
    """A stop that lands in a runner's first seconds (before its handler exists) must still
    reach the handler: killing the runner outright would lose the requeue."""
    settings = Settings(data_dir=tmp_path)
    executor = SavingExecutor(settings, tmp_path / "saved", import_s=1.0)
    handle = executor.start("ftjob-1")
    executor.interrupt(handle)
    wait_until_gone(executor, handle)
    assert (tmp_path / "saved").read_text() == "resume point"


def test_a_runner_whose_scheduler_dies_gets_sigterm_to_save(tmp_path) -> None:
    """The scheduler's process is killed -9: its runner gets SIGTERM (PR_SET_PDEATHSIG), so it
    can save a resume point, rather than SIGKILL."""
    settings = Settings(data_dir=tmp_path)
    marker = tmp_path / "saved"
    scheduler_script = f"""
import sys, threading, time
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_subprocess_executor import SavingExecutor
from tuneforge.config import Settings
executor = SavingExecutor(Settings(data_dir={str(tmp_path)!r}), {str(marker)!r})
executor.start("ftjob-1")
print("started", flush=True)
time.sleep(60)
"""
    scheduler = subprocess.Popen(
        [sys.executable, "-c", scheduler_script], stdout=subprocess.PIPE, text=True
    )
    assert scheduler.stdout.readline().strip() == "started"
    wait_for_ready(settings, "ftjob-1")
    scheduler.kill()
    scheduler.wait()
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, "the runner was not asked to save"
        time.sleep(0.05)
    assert marker.read_text() == "resume point"


def test_a_runner_that_exited_is_gone_even_before_it_is_reaped() -> None:
    """A runner whose server died is adopted by init; until init reaps it, its pid still exists
    (a zombie). Another scheduler must see it gone, or its job would stay RUNNING forever."""
    process = subprocess.Popen([sys.executable, "-c", "pass", RUNNER_MODULE])
    deadline = time.monotonic() + 30
    while (Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z":
        assert time.monotonic() < deadline, "the stand-in runner did not exit"
        time.sleep(0.05)
    assert process_alive(process.pid)  # the kernel still knows the pid...
    assert is_runner_process(process.pid) is False  # ...but nothing runs there
    process.wait()


STORM = """
import os, signal, sys, threading, time
from tuneforge.jobs.runner import stop_on_sigterm
stop = threading.Event()
stop_on_sigterm(stop)
busy = threading.Event()
threading.Thread(target=lambda: [busy.set(), time.sleep(0.001)] and None).start()
for _ in range(20):  # a dying server's several parent-death signals, in a burst
    os.kill(os.getpid(), signal.SIGTERM)
assert stop.wait(10), "SIGTERM never set the stop signal"
for _ in range(1000):  # the main thread still runs Python
    sum(range(100))
print("stopped", flush=True)
"""


def test_a_burst_of_sigterms_stops_the_runner_once_and_never_hangs_it():
    """A runner orphaned by kill -9 gets a SIGTERM per thread of its dead server. With
    Event.set() in a signal handler, one landing inside another's set() deadlocked the runner
    at its next step (seen in the crash test)."""
    result = subprocess.run(
        [sys.executable, "-c", STORM],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: signal.pthread_sigmask(
            signal.SIG_BLOCK, {signal.SIGTERM}
        ),  # as runners start
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "stopped"

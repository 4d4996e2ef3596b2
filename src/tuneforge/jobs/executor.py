"""The ``Executor`` protocol: how a scheduler starts, watches and stops a job's runner.

The scheduler and crash recovery know a runner only by its *handle*, an opaque string the
executor returns from ``start`` and the scheduler stores in the job row (``runner_handle``).
Any scheduler, in any process on any machine, can then ask its own executor about any job's
handle; only the executor that made a handle knows how to read it. That is what lets a job
run as a local subprocess today and somewhere else (a container, a cluster job) tomorrow
without the scheduler or the store changing.

``tuneforge.jobs.subprocess_executor.SubprocessExecutor`` is the implementation the scheduler
uses unless the settings pick ``tuneforge.jobs.ray_executor.RayExecutor``
(``TUNEFORGE_EXECUTOR=ray``) or it is given another. An executor may also offer ``slots()``:
how many jobs its scheduler should run at once, and on which local devices (the Ray executor's
come from its cluster); without, the scheduler counts this machine's GPUs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from tuneforge.config import Settings
    from tuneforge.store.db import Database


@runtime_checkable
class Executor(Protocol):
    """Starts runners and answers for them by handle. ``start`` is called from the scheduler's
    thread, which lives as long as the process (the subprocess executor needs that: its runners
    die with the thread that started them); ``stop`` may also come from the thread that stops
    the scheduler, once the scheduler's thread has ended or given up waiting."""

    def claim_handle(self) -> str:
        """The handle to store with a job this executor's scheduler has just claimed, before
        its runner starts. It stands for the claimant itself, so that ``is_alive`` can say a
        claim whose scheduler died is gone (False) rather than leave it to the heartbeat."""
        ...

    def start(self, job_id: str, devices: tuple[int, ...] = ()) -> str:
        """Start a runner for ``job_id`` on ``devices`` (GPU indices; none on a CPU machine)
        and return its handle. The runner reports through the store, not through the
        executor."""
        ...

    def is_alive(self, handle: str) -> bool | None:
        """Whether the runner behind ``handle`` still exists: True, False (gone: its job may be
        recovered at once), or None when this executor cannot tell from here (another
        machine's runner, a handle of another kind); the job's heartbeat then decides. A
        runner this executor started and that has exited is False from then on."""
        ...

    def exit_cause(self, handle: str) -> str | None:
        """Why the runner behind ``handle`` ended, when a new attempt would end the same way:
        ``"out_of_memory"`` (the kernel's OOM killer ended it). None for a runner still alive,
        one that ended otherwise (its job is retried), or one this executor cannot tell about."""
        ...

    def interrupt(self, handle: str) -> None:
        """Ask the runner behind ``handle`` to stop soon, saving a resume point (its server is
        stopping), and return at once; ``is_alive`` then tells when it has gone. A no-op for a
        runner that has already exited or that this executor cannot reach."""
        ...

    def stop(self, handle: str) -> None:
        """Stop the runner behind ``handle`` now and wait for it to be gone. A no-op for a
        runner that has already exited or that this executor cannot reach."""
        ...


def executor_for(settings: Settings, worker_id: str, db: Database) -> Executor:
    """The executor the settings name (``executor``: subprocess, or ray)."""
    if settings.executor == "ray":
        from tuneforge.jobs.ray_executor import RayExecutor

        return RayExecutor(settings, worker_id, db)
    from tuneforge.jobs.subprocess_executor import SubprocessExecutor

    return SubprocessExecutor(settings, worker_id)

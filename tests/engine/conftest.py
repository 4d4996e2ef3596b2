from __future__ import annotations

import pytest

from tuneforge.config import Settings
from tuneforge.engine.observer import TuningObserver


class RecordingObserver(TuningObserver):
    """Keeps every report; asks to stop (``stop_with``) once ``stop_at_step`` is reached."""

    def __init__(self, stop_at_step: int | None = None, stop_with: str = "cancel") -> None:
        self.plans, self.steps, self.epochs, self.checkpoints, self.events = [], [], [], [], []
        self.disk_use: list[int] = []
        self.stop_at_step = stop_at_step
        self.stop_with = stop_with

    def on_start(self, plan):
        self.plans.append(plan)

    def on_step(self, metrics):
        self.steps.append(metrics)

    def on_epoch(self, metrics):
        self.epochs.append(metrics)

    def on_checkpoint(self, checkpoint):
        self.checkpoints.append(checkpoint)

    def on_event(self, message, level="info", data=None):
        self.events.append(message)

    def on_disk_use(self, total_bytes):
        self.disk_use.append(total_bytes)

    def stop_requested(self):
        if (
            self.stop_at_step is not None
            and self.steps
            and self.steps[-1].step >= self.stop_at_step
        ):
            self.stop_at_step = None  # ask once
            return self.stop_with
        return None


class SaveWatcher(RecordingObserver):
    """Also records, at each reported save, which folders hold an optimizer state."""

    def __init__(self, checkpoints_dir, **kwargs) -> None:
        super().__init__(**kwargs)
        self.checkpoints_dir = checkpoints_dir
        self.with_optimizer: list[list[str]] = []

    def on_checkpoint(self, checkpoint):
        super().on_checkpoint(checkpoint)
        self.with_optimizer.append(holding_optimizer(self.checkpoints_dir))


class CrashAt(RecordingObserver):
    """Fails the run at a step, as a killed runner would stop: no save, no clean-up."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.crash_step = step

    def on_step(self, metrics):
        super().on_step(metrics)
        if metrics.step == self.crash_step:
            raise KeyboardInterrupt(f"crash at step {metrics.step}")


def holding_optimizer(checkpoints_dir) -> list[str]:
    return sorted(p.parent.name for p in checkpoints_dir.glob("*/optimizer.pt"))


@pytest.fixture(scope="session")
def session_settings(tmp_path_factory, models_dir) -> Settings:
    data_dir = tmp_path_factory.mktemp("engine-data")
    (data_dir / "models").symlink_to(models_dir, target_is_directory=True)
    return Settings(data_dir=data_dir)

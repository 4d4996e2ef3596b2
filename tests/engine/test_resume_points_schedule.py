"""When a run saves a resume point mid-epoch: once the configured minutes or steps have passed
since its last save, not before, counted again from each save. The training callback's clock is
patched, so no test sleeps."""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerControl, TrainerState, TrainingArguments

from tests.engine.conftest import RecordingObserver
from tests.engine.test_eta import Clock
from tuneforge.engine import callbacks
from tuneforge.engine.callbacks import TokenCounter, TuningCallback
from tuneforge.engine.checkpoints import ResumePoints, Retention

STEPS_PER_EPOCH = 100  # every step below is mid-epoch


class Run:
    """A TuningCallback driven step by step on a patched clock, as the Trainer drives it."""

    def __init__(self, monkeypatch, tmp_path: Path, resume_points: ResumePoints) -> None:
        self.clock = Clock()
        monkeypatch.setattr(callbacks.time, "perf_counter", self.clock)
        self.output = tmp_path / "trainer"
        checkpoints = tmp_path / "checkpoints"
        checkpoints.mkdir()
        self.observer = RecordingObserver()
        self.callback = TuningCallback(
            self.observer, TokenCounter(lambda f: f), checkpoints, patience=3
        )
        self.callback.plan_saves(resume_points, Retention())
        self.args = TrainingArguments(output_dir=str(self.output), report_to=[])
        self.state = TrainerState()
        self.state.max_steps, self.state.global_step = 10 * STEPS_PER_EPOCH, 0
        self.callback.on_train_begin(self.args, self.state, TrainerControl())

    def step(self, seconds: float) -> bool:
        """One training step taking ``seconds``: whether the callback asks for a save."""
        self.clock.now += seconds
        self.state.global_step += 1
        self.state.epoch = self.state.global_step / STEPS_PER_EPOCH
        control = TrainerControl()
        self.callback.on_step_end(self.args, self.state, control)
        return control.should_save

    def save(self) -> None:
        """What the Trainer does when asked: write checkpoint-N, then call on_save."""
        folder = self.output / f"checkpoint-{self.state.global_step}"
        folder.mkdir(parents=True)
        (folder / "adapter_model.safetensors").write_bytes(b"weights")
        self.callback.on_save(self.args, self.state, TrainerControl())


def test_a_resume_point_is_due_once_its_minutes_have_passed_and_not_before(monkeypatch, tmp_path):
    run = Run(monkeypatch, tmp_path, ResumePoints(every_s=600.0))

    assert [run.step(100.0) for _ in range(5)] == [False] * 5  # 500 s
    assert run.step(99.0) is False  # 599 s
    assert run.step(1.0) is True  # 600 s since training began


def test_the_minutes_count_again_from_each_save(monkeypatch, tmp_path):
    run = Run(monkeypatch, tmp_path, ResumePoints(every_s=600.0))
    run.step(600.0)
    run.save()

    assert [c.step for c in run.observer.checkpoints] == [1]
    assert run.step(599.0) is False  # 1,199 s since training began, 599 since the save
    assert run.step(1.0) is True


def test_a_resume_point_is_due_every_n_steps_counted_from_the_last_save(monkeypatch, tmp_path):
    run = Run(monkeypatch, tmp_path, ResumePoints(every_steps=3))

    assert [run.step(1.0) for _ in range(3)] == [False, False, True]
    run.save()
    assert [run.step(1.0) for _ in range(3)] == [False, False, True]


def test_whichever_comes_first_makes_it_due(monkeypatch, tmp_path):
    run = Run(monkeypatch, tmp_path, ResumePoints(every_s=600.0, every_steps=50))

    assert run.step(700.0) is True  # one slow step: the minutes first
    run.save()
    assert [run.step(1.0) for _ in range(50)][-2:] == [False, True]  # then the steps


def test_no_schedule_never_saves_mid_epoch(monkeypatch, tmp_path):
    run = Run(monkeypatch, tmp_path, ResumePoints())

    assert not any(run.step(3600.0) for _ in range(20))

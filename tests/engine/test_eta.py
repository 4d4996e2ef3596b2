"""The ETA a running job shows comes from its recent steps, not from an average that still
carries the slow first steps."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import TrainerState, TrainingArguments

from tests.engine.conftest import RecordingObserver
from tuneforge.engine import callbacks
from tuneforge.engine.callbacks import TokenCounter, TuningCallback
from tuneforge.engine.eta import RecentPace


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_steps(monkeypatch, tmp_path: Path, step_seconds: list[float], max_steps: int):
    clock = Clock()
    monkeypatch.setattr(callbacks.time, "perf_counter", clock)
    observer = RecordingObserver()
    callback = TuningCallback(observer, TokenCounter(lambda f: f), tmp_path, patience=3)
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[])
    state = TrainerState()
    state.max_steps, state.global_step = max_steps, 0
    callback.on_train_begin(args, state, None)
    for seconds in step_seconds:
        clock.now += seconds
        state.global_step += 1
        callback.on_log(args, state, None, logs={"loss": 1.0, "learning_rate": 1e-4})
    return observer.steps


def test_eta_leaves_out_the_slow_first_step(monkeypatch, tmp_path):
    # A 60 s first step (warm-up), then one second a step; 100 steps are left at the end.
    steps = run_steps(monkeypatch, tmp_path, [60.0] + [1.0] * 10, max_steps=111)
    assert steps[-1].eta_s == pytest.approx(100.0)
    assert steps[-1].elapsed_s == pytest.approx(70.0)  # the elapsed time still counts it all


def test_eta_follows_a_change_of_pace(monkeypatch, tmp_path):
    # Steps slow down from 1 s to 3 s (another process took the cores): within the window
    # the estimate is the new pace.
    steps = run_steps(monkeypatch, tmp_path, [1.0] * 30 + [3.0] * 25, max_steps=155)
    assert steps[-1].eta_s == pytest.approx(300.0)


def test_first_step_alone_estimates_from_itself(monkeypatch, tmp_path):
    steps = run_steps(monkeypatch, tmp_path, [2.0], max_steps=11)
    assert steps[0].eta_s == pytest.approx(20.0)


def test_resumed_attempt_times_only_its_own_steps():
    pace = RecentPace(window=5)
    pace.start(step=40, at_s=0.0)
    assert pace.eta_s(10) is None  # nothing timed yet
    pace.record(41, 30.0)  # the resumed attempt's first step reloads everything
    pace.record(42, 32.0)
    pace.record(43, 34.0)
    assert pace.seconds_per_step() == pytest.approx(2.0)
    assert pace.eta_s(10) == pytest.approx(20.0)

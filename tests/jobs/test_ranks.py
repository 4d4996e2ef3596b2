"""Multi-device runs: 2 CPU ranks under torch's elastic launcher (gloo) train what one process
trains on the same global batch, report once, and resume; the devices a job may ask for."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.engine.conftest import RecordingObserver
from tuneforge.config import Settings
from tuneforge.engine.errors import TuningError
from tuneforge.engine.methods import get_method
from tuneforge.engine.run import run_tuning
from tuneforge.engine.spec import Hyperparameters, TuningSpec
from tuneforge.errors import InvalidArgument
from tuneforge.jobs import ranks
from tuneforge.machine import cpu_count

TINY = "tuneforge/tiny-chat"
EXAMPLES = 128  # 16 steps an epoch at batch 8
# The 2-rank loss of a step is the same token mean as the single process's, summed in another
# order: it differs by float rounding only (measured: at most 1.4e-6 on a loss near 6).
LOSS_TOLERANCE = 1e-4


@dataclass
class Training:
    """One run, as each rank receives it (pickled)."""

    spec: TuningSpec
    train: list
    output: Path
    settings: Settings
    pause_at_step: int | None = None
    parent_pid: int = 0


def train_here(training: Training) -> dict:
    """A rank's run (or the single process's): what rank 0's observer saw, and the result."""
    if training.parent_pid:
        ranks.die_with_parent(training.parent_pid)
    observer = RecordingObserver(stop_at_step=training.pause_at_step, stop_with="pause")
    result = run_tuning(
        training.spec, training.train, [], training.output, training.settings, observer
    )
    return {
        "losses": {m.step: m.loss for m in observer.steps},
        "epochs": [e.epoch for e in observer.epochs],
        "checkpoints": [(c.kind, c.path.name) for c in observer.checkpoints],
        "outcome": result.outcome,
        "steps": result.steps,
        "default": result.default_checkpoint.path if result.default_checkpoint else None,
        "world_size": os.environ.get("WORLD_SIZE"),
    }


def on_two_ranks(training: Training, log_dir: Path) -> dict:
    training.parent_pid = os.getpid()
    return ranks.run_ranks(train_here, training, 2, log_dir, run_id=log_dir.name)


def spec_for(mode: str, **extra) -> TuningSpec:
    learning_rate = 1e-3 if mode == "peft" else 1e-4
    hyperparameters = Hyperparameters(epochs=2, batch_size=8, learning_rate=learning_rate, **extra)
    return TuningSpec(base_model=TINY, mode=mode, hyperparameters=hyperparameters)


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory, models_dir) -> Settings:
    data_dir = tmp_path_factory.mktemp("ranks-data")
    (data_dir / "models").symlink_to(models_dir, target_is_directory=True)
    return Settings(data_dir=data_dir)


@pytest.fixture(scope="module")
def single_lora(sentiment, module_settings, tmp_path_factory) -> dict:
    output = tmp_path_factory.mktemp("single-lora")
    return train_here(
        Training(spec_for("peft"), sentiment["train"][:EXAMPLES], output, module_settings)
    )


def assert_same_curve(single: dict, distributed: dict) -> None:
    assert distributed["world_size"] == "2"
    assert sorted(distributed["losses"]) == sorted(single["losses"]) == list(range(1, 33))
    differences = [abs(distributed["losses"][s] - single["losses"][s]) for s in single["losses"]]
    assert max(differences) < LOSS_TOLERANCE
    # A curve that learns: matching it is no accident of a model that never moved.
    assert single["losses"][32] < single["losses"][1] - 0.5


@pytest.mark.slow
def test_two_lora_ranks_follow_the_single_process_loss_curve(
    single_lora, sentiment, module_settings, tmp_path
) -> None:
    training = Training(
        spec_for("peft"), sentiment["train"][:EXAMPLES], tmp_path / "out", module_settings
    )
    distributed = on_two_ranks(training, tmp_path / "logs")
    assert_same_curve(single_lora, distributed)
    # Rank 0 alone reports and files: each epoch's checkpoint once, in one folder.
    assert distributed["checkpoints"] == [("epoch", "epoch-1"), ("epoch", "epoch-2")]
    assert sorted(p.name for p in (tmp_path / "out" / "checkpoints").iterdir()) == [
        "README.md",
        "epoch-1",
        "epoch-2",
    ]
    assert (tmp_path / "out" / "checkpoints" / "epoch-2" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_full_weights_shard_over_two_ranks_and_follow_the_single_process_curve(
    sentiment, module_settings, tmp_path
) -> None:
    from transformers import AutoModelForCausalLM

    def run(name: str, distributed: bool) -> dict:
        spec = spec_for("full", keep_optimizer_state=True)
        training = Training(spec, sentiment["train"][:EXAMPLES], tmp_path / name, module_settings)
        return (
            on_two_ranks(training, tmp_path / f"{name}-logs")
            if distributed
            else (train_here(training))
        )

    single, sharded = run("single", False), run("sharded", True)
    assert_same_curve(single, sharded)
    last = tmp_path / "sharded" / "checkpoints" / "epoch-2"
    # FSDP saved the resume state (kept in the last save here), in its own files.
    assert (last / "pytorch_model_fsdp.bin").is_file() and (last / "optimizer.bin").is_file()
    assert not (tmp_path / "single" / "checkpoints" / "epoch-2" / "optimizer.bin").exists()
    # The older epoch keeps its weights only, FSDP's files trimmed as a single process's are.
    assert sorted(p.name for p in last.with_name("epoch-1").glob("*.bin")) == ["training_args.bin"]
    weights = [
        AutoModelForCausalLM.from_pretrained(tmp_path / name / "checkpoints" / "epoch-2")
        for name in ("single", "sharded")
    ]
    for a, b in zip(*(w.state_dict().values() for w in weights), strict=True):
        assert (a - b).abs().max().item() < 1e-4


@pytest.mark.slow
def test_a_paused_two_rank_run_resumes_on_two_ranks_where_it_stopped(
    single_lora, sentiment, module_settings, tmp_path
) -> None:
    training = Training(
        spec_for("peft"),
        sentiment["train"][:EXAMPLES],
        tmp_path / "out",
        module_settings,
        pause_at_step=10,
    )
    paused = on_two_ranks(training, tmp_path / "logs-1")
    assert paused["outcome"] == "paused"
    stopped_at = paused["steps"]
    assert 10 <= stopped_at < 16
    assert (tmp_path / "out" / "checkpoints" / f"step-{stopped_at}").is_dir()

    training.pause_at_step = None
    resumed = on_two_ranks(training, tmp_path / "logs-2")
    assert resumed["outcome"] == "succeeded"
    assert sorted(resumed["losses"]) == list(range(stopped_at + 1, 33))
    for step, loss in resumed["losses"].items():
        assert abs(loss - single_lora["losses"][step]) < LOSS_TOLERANCE, step


# --- the devices a job may ask for ----------------------------------------------------------


def test_one_device_is_always_allowed() -> None:
    ranks.check_devices(1, get_method("reward"), batch_size=5)


@pytest.mark.parametrize("devices", [0, -2])
def test_fewer_than_one_device_is_refused(devices) -> None:
    with pytest.raises(InvalidArgument, match="at least 1") as caught:
        ranks.check_devices(devices, get_method("supervised"))
    assert caught.value.param == "devices"


def test_more_devices_than_the_machine_offers_are_refused(monkeypatch) -> None:
    monkeypatch.setattr(ranks, "gpu_count", lambda: 0)
    assert ranks.offered_devices() == (cpu_count(), "CPU cores")
    with pytest.raises(InvalidArgument, match=f"it has {cpu_count()} CPU cores"):
        ranks.check_devices(cpu_count() + 1, get_method("supervised"))
    monkeypatch.setattr(ranks, "gpu_count", lambda: 4)
    ranks.check_devices(4, get_method("supervised"))
    with pytest.raises(InvalidArgument, match="it has 4 GPUs"):
        ranks.check_devices(8, get_method("supervised"))


def test_a_method_without_multi_device_training_is_refused_on_several(monkeypatch) -> None:
    monkeypatch.setattr(ranks, "gpu_count", lambda: 4)
    with pytest.raises(InvalidArgument, match="preference method trains on one device"):
        ranks.check_devices(2, get_method("preference"))


def test_a_batch_that_does_not_split_over_the_devices_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(ranks, "gpu_count", lambda: 4)
    ranks.check_devices(4, get_method("supervised"), batch_size=8)
    ranks.check_devices(4, get_method("supervised"), batch_size="auto")
    with pytest.raises(InvalidArgument, match="batch_size 6 does not split evenly") as caught:
        ranks.check_devices(4, get_method("supervised"), batch_size=6)
    assert caught.value.param == "batch_size"


def test_a_failed_launch_fails_with_the_ranks_own_error(tmp_path) -> None:
    (tmp_path / "failure-rank1.json").write_text(
        json.dumps({"code": "diverged", "message": "training diverged at step 3"})
    )
    launch_error = SimpleNamespace(get_first_failure=lambda: (0, None))
    error = ranks._failure(tmp_path, launch_error)
    assert isinstance(error, TuningError)
    assert (error.code, str(error)) == ("diverged", "training diverged at step 3")


def test_a_rank_killed_without_a_word_fails_the_launch_saying_how(tmp_path) -> None:
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    # torch's own record of a rank that died with no error file: SIGKILL of global rank 1
    failure = ProcessFailure(local_rank=1, pid=4242, exitcode=-9, error_file="<N/A>")
    error = ranks._failure(tmp_path, SimpleNamespace(get_first_failure=lambda: (1, failure)))
    assert error.code == "internal_error"
    assert "rank 1 of the job's processes was killed by SIGKILL" in str(error)

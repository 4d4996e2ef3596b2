"""What the list and get commands print: JSON for scripts, tables for people."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import random_lora_adapter
from tuneforge.cli.common import local_service
from tuneforge.models.tiny import ensure_tiny_model
from tuneforge.store import repo
from tuneforge.store.models import TuningJob
from tuneforge.store.states import JobState
from tuneforge.store.types import utcnow

TINY = "tuneforge/tiny-chat"


@pytest.fixture(scope="module")
def adapter(models_dir, tmp_path_factory) -> Path:
    base = ensure_tiny_model(TINY, models_dir)
    return random_lora_adapter(base, tmp_path_factory.mktemp("tuned") / "adapter")


@pytest.fixture
def tuned(settings, adapter) -> TuningJob:
    """A succeeded job of the tiny model, named and suffixed, with the rows a runner leaves:
    resolved hyperparameters, data statistics, step and epoch metrics, a checkpoint per epoch
    and its tuned model."""
    service = local_service(settings)
    with service.db.session() as s:
        repo.ensure_project(s, "default")
        job = repo.create_job(
            s,
            "default",
            base_model=TINY,
            training_file="file-unused",
            display_name="Sentiment v1",
            suffix="sentiment",
        )
        job.state, job.ended_at = JobState.SUCCEEDED, utcnow()
        job.resolved_hyperparameters = {"epochs": 2, "batch_size": 8, "learning_rate": 0.0002}
        job.data_stats = {
            "tuningDatasetExampleCount": 400,
            "totalBillableTokenCount": 12345,
            "tuningStepCount": 100,
            "userInputTokenDistribution": {"mean": 21.5, "max": 30},
            "userOutputTokenDistribution": {"mean": 2.0, "max": 2},
        }
        for step, loss in enumerate([2.0, 1.5, 1.0, 0.5], start=1):
            metrics = {"step": step, "epoch": step / 2, "loss": loss, "total_steps": 4}
            repo.record_event(s, job.id, f"step {step}", type="metrics",
                              data={"kind": "step", "metrics": metrics})  # fmt: skip
        for epoch, (train, valid) in enumerate([(1.5, 1.2), (0.5, 0.9)], start=1):
            metrics = {"epoch": epoch, "step": epoch * 2, "train_loss": train, "valid_loss": valid}
            repo.record_event(s, job.id, f"epoch {epoch}", type="metrics",
                              data={"kind": "epoch", "metrics": metrics})  # fmt: skip
        repo.add_checkpoint(s, job.id, epoch=1, step=2, path=str(adapter))
        repo.add_checkpoint(s, job.id, epoch=2, step=4, path=str(adapter), is_default=True)
        repo.create_tuned_model(s, job.id)
        return job


def test_jobs_list_and_get_print_json_and_nothing_else(cli, tuned):
    listed = json.loads(cli("jobs", "list", "--json", stdout_only=True))
    [job] = [j for j in listed if j["name"].endswith(tuned.id)]
    assert job["state"] == "JOB_STATE_SUCCEEDED"
    assert job["tunedModelDisplayName"] == "Sentiment v1"

    one = json.loads(cli("jobs", "get", tuned.id, "--json", stdout_only=True))
    assert one["name"] == job["name"] and one["baseModel"] == TINY

    events = json.loads(cli("jobs", "events", tuned.id, "--json", stdout_only=True))
    assert not any(e.get("type") == "metrics" for e in events)
    with_metrics = json.loads(
        cli("jobs", "events", tuned.id, "--json", "--metrics", stdout_only=True)
    )
    assert sum(e.get("type") == "metrics" for e in with_metrics) == 6


def test_jobs_list_and_get_show_the_display_name_to_people(cli, tuned):
    assert "Sentiment v1" in cli("jobs", "list")
    table = cli("jobs", "get", tuned.id)
    assert "Sentiment v1" in table and "SUCCEEDED" in table and "{" not in table


def test_models_list_and_get_show_display_name_and_suffix(cli, tuned):
    models = json.loads(cli("models", "list", "--json", stdout_only=True))
    [mine] = [m for m in models if m["kind"] == "tuned"]
    assert (mine["display_name"], mine["suffix"], mine["job"]) == (
        "Sentiment v1",
        "sentiment",
        tuned.id,
    )
    assert TINY in {m["id"] for m in models if m["kind"] == "base"}
    table = cli("models", "list")
    assert "Sentiment v1" in table and "sentiment" in table

    one = json.loads(cli("models", "get", mine["id"], "--json", stdout_only=True))
    assert one["suffix"] == "sentiment" and one["job"] == tuned.id
    assert Path(one["adapter"]).is_dir()


def test_keys_list_prints_json(cli):
    cli("keys", "create", "--name", "ci")
    [key] = [k for k in json.loads(cli("keys", "list", "--json", stdout_only=True)) if k["name"]]
    assert key["name"] == "ci" and key["revoked"] is None and len(key["prefix"]) >= 4


def test_generate_n_numbers_each_answer(cli):
    output = cli(
        "generate", TINY, "review: superb ->", "--n", "3", "--temperature", "1", "--seed", "0",
        "--max-tokens", "4",
    )  # fmt: skip
    headers = [line for line in output.splitlines() if line.startswith("── answer")]
    assert headers == [f"── answer {i} of 3 ──" for i in (1, 2, 3)]


def test_export_writes_a_portable_adapter_with_a_model_card(cli, tuned, settings, tmp_path):
    from peft import PeftConfig, PeftModel

    from tuneforge.models.loading import load_causal_lm
    from tuneforge.models.resolve import resolve_base_model

    out = tmp_path / "exported"
    output = cli("models", "export", tuned.id, str(out))

    assert output.strip() == f"exported {tuned.id} to {out}"  # no warnings, no progress bars
    assert PeftConfig.from_pretrained(out).base_model_name_or_path == TINY
    assert not (out / "optimizer.pt").exists()
    base = load_causal_lm(resolve_base_model(TINY, settings).source)
    loaded = PeftModel.from_pretrained(base, out)
    assert loaded.peft_config["default"].base_model_name_or_path == TINY

    card = (out / "README.md").read_text()
    assert "Sentiment v1" in card and f"`{TINY}`" in card and tuned.id in card
    assert "| examples | 400 |" in card and "| billable tokens (all epochs) | 12345 |" in card
    assert "| learning_rate | 0.0002 |" in card and "| epochs | 2 |" in card
    assert "final training loss: 0.5000 (step 4)" in card
    assert "best validation loss: 0.9000 (epoch 2)" in card
    assert "| 1 | 1.5000 | 1.2000 |" in card
    assert "More Information Needed" not in card  # PEFT's boilerplate card is replaced


@pytest.mark.parametrize("merged", [False, True])
def test_exported_files_are_readable_as_newly_created_files_are(
    cli, tuned, adapter, tmp_path, merged
):
    """Checkpoints' weights are written 0600 (save_pretrained's safetensors): an export must
    not keep that from the owner's group."""
    weights = sorted(adapter.glob("*.safetensors"))
    modes = {path: path.stat().st_mode for path in weights}
    for path in weights:
        path.chmod(0o600)
    try:
        out = tmp_path / "exported"
        cli("models", "export", tuned.id, str(out), *(["--merged"] if merged else []))
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
    probe = tmp_path / "probe"
    probe.touch()
    expected = probe.stat().st_mode & 0o777  # 0o644 under the usual umask
    exported = {path.name: path.stat().st_mode & 0o777 for path in out.iterdir()}
    assert any(name.endswith(".safetensors") for name in exported)
    assert exported == dict.fromkeys(exported, expected)


def test_export_names_a_local_folder_base_by_its_folder_name(cli, tuned, settings, tmp_path):
    from peft import PeftConfig

    from tuneforge.models.resolve import resolve_base_model

    folder = resolve_base_model(TINY, settings).source  # an absolute path under a model root
    service = local_service(settings)
    with service.db.session() as s:
        s.get(TuningJob, tuned.id).base_model = folder
    out = tmp_path / "exported"
    cli("models", "export", tuned.id, str(out))
    name = Path(folder).name
    assert PeftConfig.from_pretrained(out).base_model_name_or_path == name
    card = (out / "README.md").read_text()
    assert f"base_model: {name}" in card and folder not in card


def test_export_into_a_non_empty_folder_needs_force(cli, tuned, tmp_path):
    out = tmp_path / "exported"
    out.mkdir()
    (out / "old.txt").write_text("old")

    refused = cli("models", "export", tuned.id, str(out), code=1)
    assert "not empty" in refused and "--force" in refused
    assert (out / "old.txt").exists()

    cli("models", "export", tuned.id, str(out), "--force")
    assert not (out / "old.txt").exists() and (out / "adapter_config.json").is_file()


def test_a_cancelled_jobs_summary_names_the_checkpoints_still_usable(cli, settings, adapter):
    service = local_service(settings)
    with service.db.session() as s:
        repo.ensure_project(s, "default")
        job = repo.create_job(s, "default", base_model=TINY, training_file="file-unused")
        job.state, job.ended_at = JobState.CANCELLED, utcnow()
        for epoch in (1, 2):
            repo.add_checkpoint(s, job.id, epoch=epoch, step=epoch * 2, path=str(adapter))
            repo.record_event(s, job.id, f"checkpoint saved: epoch {epoch} (step {epoch * 2})",
                              data={"epoch": epoch, "step": epoch * 2})  # fmt: skip
        job_id = job.id

    summary = " ".join(cli("jobs", "get", job_id, "--watch").split())

    names = [f"{job_id}@epoch-1", f"{job_id}@epoch-2"]
    assert f"checkpoints you can still use: {', '.join(names)}" in summary
    for name in names:  # each name the summary gives is one the CLI can load
        assert Path(json.loads(cli("models", "get", name, "--json", stdout_only=True))["adapter"])
